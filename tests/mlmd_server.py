"""A loopback ML Metadata gRPC server on a real SQLite store, for the cluster backend's tests.

KFP 2.5.0 runs ``gcr.io/tfx-oss-public/ml_metadata_store_server:1.14.0`` on MySQL
(kubeflow/pipelines@2.5.0 manifests/kustomize/base/metadata/base/metadata-grpc-deployment.yaml:28):
the C++ ``MetadataStoreService`` handing each request to the C++ ``MetadataStore``. Here each
request of ``ml_metadata.MetadataStoreService`` goes, as its serialized bytes, to the method of
the same name of ml-metadata 1.16.0's C++ store (the module the Python client calls for a direct
database connection), which answers with the serialized response and a status code whose numbers
are gRPC's. So the client under test is the one that talks to KFP's server: the real
``MetadataStore`` with a ``MetadataStoreClientConfig``, over real gRPC.

What differs from KFP's server:

- The store is 1.16.0, KFP's 1.14.0. The service protos differ only in two new ``PutExecution``
  and ``PutLineageSubgraph`` options (``force_update_time``, ``force_reuse_context``: google/ml-
  metadata v1.14.0..v1.16.0 ml_metadata/proto/metadata_store_service.proto), which the 1.16.0
  client always sends as false; a 1.14.0 server ignores them as unknown fields.
- SQLite, not MySQL; filter queries have one grammar for both (metadata_store.proto:912-1019).
- Methods the 1.16.0 module does not expose (the deprecated ``GetLineageGraph``) answer
  UNIMPLEMENTED; there is no TLS.
- One SQLite connection behind one lock: MySQL's row locks, and the ABORTED answers they give
  concurrent first creations of a type (which the client retries), are not reproduced.
"""

import threading
from concurrent import futures

import grpc
from ml_metadata.metadata_store.pywrap.metadata_store_extension import (
    metadata_store as serialized_store,
)
from ml_metadata.proto import metadata_store_pb2

SERVICE = "ml_metadata.MetadataStoreService"
_STATUS = {status.value[0]: status for status in grpc.StatusCode}


class _Service(grpc.GenericRpcHandler):
    def __init__(self, sqlite_path: str) -> None:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = sqlite_path
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        )
        self._store = serialized_store.CreateMetadataStore(
            config.SerializeToString(), metadata_store_pb2.MigrationOptions().SerializeToString()
        )
        self._lock = threading.Lock()  # one SQLite connection: one call at a time
        self.calls: list[str] = []

    def service(self, handler_call_details):  # grpc calls it with a HandlerCallDetails
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        call = getattr(serialized_store, method, None) if service == SERVICE else None
        if call is None or not method[:1].isupper():
            return None  # grpc answers UNIMPLEMENTED

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                self.calls.append(method)
                response, message, code = call(self._store, request)
            if code != 0:
                context.abort(_STATUS.get(code, grpc.StatusCode.UNKNOWN), message.decode())
            return response

        # No (de)serializers: the bytes pass through as the C++ store takes and gives them.
        return grpc.unary_unary_rpc_method_handler(unary)


class MetadataServer:
    """The server on ``127.0.0.1:<port>``, started on entering and stopped on leaving.

    Args:
        sqlite_path: The SQLite file of its store (created if absent).
    """

    def __init__(self, sqlite_path: str) -> None:
        self._service = _Service(sqlite_path)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((self._service,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def uri(self) -> str:
        """``grpc://127.0.0.1:<port>``."""
        return f"grpc://127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[str]:
        """The methods called, in order."""
        return self._service.calls

    def __enter__(self) -> "MetadataServer":
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
