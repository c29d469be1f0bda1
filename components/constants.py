"""Names shared between components: files inside artifacts and metadata keys.

Defined once here so that the producer and every consumer of an artifact agree.
"""

# Metadata keys of Dataset artifacts written by ingest.
NUM_ROWS = "num_rows"
FINGERPRINT = "fingerprint"
COLUMNS = "columns"
SPLIT = "split"
# Rows of a split that came from the prediction log.
LABELLED_ROWS = "labelled_rows"

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
# The prediction log's labelled rows that are in the eval split.
LABELLED_EVAL_SPLIT = "labelled_eval"
# The prediction log a run's labelled rows came from ("" when it joined none).
LABELLED_LOG = "labelled_log"

# Files inside the validate step's artifacts.
STATS_FILE = "{split}_stats.pb"
ANOMALIES_FILE = "{split}_anomalies.pbtxt"

# Metadata keys of the anomalies artifact.
ANOMALY_COUNT = "anomaly_count"
ANOMALIES = "anomalies"

# TFDV schema environments: serving requests carry no label.
TRAINING_ENV = "TRAINING"
SERVING_ENV = "SERVING"

# Files inside the transform artifact (a folder).
TRANSFORM_SAVED_MODEL = "transform_fn"
TRANSFORM_SPEC_FILE = "transform_spec.json"

# Metadata keys of the transform, model and blessing artifacts.
TASK = "task"
LABEL = "label"
CLASSES = "classes"
BLESSED = "blessed"
REASONS = "reasons"
PRIMARY_METRIC = "primary_metric"
BASELINE_VERSION = "baseline_version"
METRICS = "metrics"
EPOCHS_RUN = "epochs_run"
REPLICAS = "replicas"
STRATEGY = "strategy"

# Metadata keys of the deploy step's output.
PUSHED = "pushed"
VERSION = "version"
DESTINATION = "destination"
REASON = "reason"

# Metadata key of the rollout step's output: whether the version serves (components.rollout).
ROLLED_OUT = "rolled_out"
# The parameter naming the model, also a lineage execution property.
MODEL_NAME = "model_name"

# The exported model's serving signature and its outputs.
SERVING_SIGNATURE = "serving_default"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LABEL = "label"
OUTPUT_CLASSES = "classes"
OUTPUT_PREDICTION = "prediction"

# The file written beside each model version in the registry.
REGISTRY_METADATA_FILE = "mlops_metadata.json"
REGISTRY_SCHEMA_FILE = "schema.pbtxt"
# The train split's TFDV statistics (text format), kept with each version: what monitoring
# compares served traffic with (training/serving skew).
REGISTRY_STATISTICS_FILE = "train_statistics.pbtxt"

# Metrics the evaluate step computes, in the order reports show them.
CLASSIFICATION_METRICS = ("accuracy", "auc", "log_loss", "macro_precision", "macro_recall")
REGRESSION_METRICS = ("rmse", "mae", "r2")

CLASSIFICATION = "classification"
REGRESSION = "regression"
AUTO = "auto"
TASKS = (AUTO, CLASSIFICATION, REGRESSION)

# deploy / validate
# Keys of the metadata kept beside each registry version (besides METRICS, TASK, CLASSES).
DATA_FINGERPRINT = "data_fingerprint"
# Where the version's lineage is: {"store", "run", "model"} (components.lineage.recording).
LINEAGE = "lineage"
# Metadata key of the schema artifact: where the schema came from.
SCHEMA_SOURCE = "source"
# Metadata keys of the baseline artifact (resolve_baseline), besides VERSION and METRICS.
BASELINE_FOUND = "found"
REGISTRY_PATH = "registry_path"

# The request id (Ce-Id) of a rollout's smoke requests; the log sink leaves them out of the log.
SMOKE_REQUEST_ID_PREFIX = "mlops-smoke-"
