# hoard: make build | test | e2e | bench | demo | dev | image | chart | deploy-manifests
GO       ?= go
HOARD_CACHE ?= /var/cache/hoard
export HOARD_CACHE
BIN      := bin/hoard
VERSION  ?= $(shell git describe --tags --match 'v*' --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X hoard.dev/hoard/internal/buildinfo.Version=$(VERSION)

.PHONY: build test unit fuzz vet tools bench demo e2e e2e-single clean rootfs image chart deploy-manifests

# The image: `make rootfs` lays out its filesystem (the one recipe the
# Dockerfile's build stage runs too); `make image` packs it, with the config
# of the Dockerfile's final stage, into a docker-archive tarball without a
# container engine (ctr images import / docker load it).
ROOTFS    ?= build/rootfs
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
IMAGE     ?= localhost/hoard:$(VERSION)
IMAGE_TAR ?= build/hoard-image.tar
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

# The Helm chart (deploy/helm/hoard); deploy/kubernetes/hoard.yaml is its
# output with the default values (tests/chart fails when they differ).
HELM      ?= $(HOARD_CACHE)/bin/helm
MANIFESTS ?= deploy/kubernetes/hoard.yaml

# demo mounts a local directory through an embedded cache and reads it twice.
demo: build
	./scripts/demo.sh

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hoard

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# tools installs what the tests run against (MinIO; root only: fuse3) into $(HOARD_CACHE).
tools:
	./scripts/install-tools.sh

# test is the default suite: unit and integration tests against a real MinIO,
# a real embedded etcd and real FUSE mounts (those skip without root).
test: vet tools
	$(GO) test -count=1 -timeout 20m ./...
	GO=$(GO) ./scripts/fuzz.sh

# fuzz runs every go test -fuzz target (found by scripts/fuzz.sh) for
# FUZZTIME inputs each (default 5000x; a count, see the script), from the
# seeds in the code and each package's testdata/fuzz; plain go test replays
# those seeds. A failure writes its
# input there: commit it with the fix.
fuzz:
	GO=$(GO) ./scripts/fuzz.sh

# unit runs the tests that need nothing outside the process (no root, no
# MinIO, no etcd, no FUSE): the node service's logic and the CSI contract
# among them. Packages that need more run in make test.
UNIT_PKGS := ./cachecore/flight/ ./cachecore/objid/ ./cachecore/pagestore/ ./cachecore/routing/ \
	./cachecore/sources/ ./cachecore/client/ ./fuseview/... ./volume/ ./node/... ./driver/... \
	./internal/boundary/ ./internal/buildinfo/ ./internal/metrics/ ./internal/sanity/
unit:
	$(GO) test -count=1 $(UNIT_PKGS)

# e2e runs the end-to-end suite on several nodes (scripts/e2e/multinode):
# a real Kubernetes built from source with one control plane and 3 kubelets,
# each in a network + mount namespace of its own (tests/nodes), MinIO, hoard
# installed with its Helm chart, pods on different nodes reading the same
# data, a node killed, the coordinator restarted, a drain, a helm upgrade,
# and the operator's view (scripts/e2e/ops.sh: preload Job, dashboard
# metrics, hoard status). e2e-single is the single-node suite
# (scripts/e2e/run.sh, ops.sh too): the fast path.
# Root only; not part of make test. Cold 8-15 minutes more (building
# Kubernetes into $(HOARD_CACHE)/k8s); warm about 5 minutes (e2e) and 2
# (e2e-single).
e2e: build
	HOARD_BIN=$(BIN) ./scripts/e2e/multinode/run.sh

e2e-single: build
	HOARD_BIN=$(BIN) ./scripts/e2e/run.sh

# faults runs the fault and load suite (tests/faults): a cache cluster of
# several nodes on this machine (network namespaces), faults injected under
# readers, and a load run; it rewrites the tables of docs/reliability.md.
# Root only; not part of make test. HOARD_FAULTS_SCALE=2 doubles the data
# sets and durations; HOARD_FAULTS_SOAK=30m adds the soak; HOARD_FAULTS_LOAD_FILES=100000 sets the load's small objects (default 20000). FAULTS_RUN
# selects tests (go test -run). About 20 minutes on 2 cores.
FAULTS_RUN ?= .
faults: tools
	@test "$$(id -u)" = 0 || { echo "make faults needs root (network namespaces, FUSE, loop devices)"; exit 1; }
	HOARD_FAULTS=1 HOARD_FAULTS_REPORT=$(CURDIR)/docs/reliability.md \
	  $(GO) test -count=1 -v -timeout 90m -run '$(FAULTS_RUN)' ./tests/faults/

# bench runs the benchmarks that compare hoard with its baselines in one run
# (HOARD_BENCH_SCALE=8 shrinks the data sets, HOARD_BENCH_ROUNDS sets rounds,
# HOARD_BENCH_SYSTEMS picks FUSE systems, HOARD_BENCH_BEFORE=path adds an
# older hoard binary, HOARD_BENCH_PROFILE=dir saves the mount's profiles per
# workload). Root only for the FUSE and replica benchmarks; installs s3fs and
# rclone from Debian when missing.
bench: build tools
	./scripts/install-tools.sh bench
	$(GO) test -count=1 -run '^$$' -bench 'IndexMemory' -benchtime 1x ./cachecore/pagestore/
	$(GO) test -count=1 -run '^$$' -bench 'Transport' -benchtime 20x ./cachecore/worker/
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 120m ./tests/bench/

rootfs:
	@test -s $(CA_BUNDLE) || { echo "no CA bundle at $(CA_BUNDLE): install Debian's ca-certificates or set CA_BUNDLE"; exit 1; }
	rm -rf $(ROOTFS)
	install -d -m 0755 $(ROOTFS)/usr/local/bin $(ROOTFS)/etc/ssl/certs
	install -d -m 1777 $(ROOTFS)/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(ROOTFS)/usr/local/bin/hoard ./cmd/hoard
	chmod 0755 $(ROOTFS)/usr/local/bin/hoard
	install -m 0644 $(CA_BUNDLE) $(ROOTFS)/etc/ssl/certs/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > $(ROOTFS)/etc/passwd
	printf 'root:x:0:\nnonroot:x:65532:\n' > $(ROOTFS)/etc/group
	printf 'hosts: files dns\n' > $(ROOTFS)/etc/nsswitch.conf
	chmod 0644 $(ROOTFS)/etc/passwd $(ROOTFS)/etc/group $(ROOTFS)/etc/nsswitch.conf

image: rootfs
	@mkdir -p $(dir $(IMAGE_TAR))
	$(GO) run ./internal/image/mkimage --rootfs $(ROOTFS) --dockerfile Dockerfile \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --name $(IMAGE) --out $(IMAGE_TAR)
	@echo "image $(IMAGE) in $(IMAGE_TAR)"

chart:
	$(HELM) lint --strict deploy/helm/hoard

deploy-manifests:
	@{ echo '# Generated by make deploy-manifests from deploy/helm/hoard with its default'; \
	   echo '# values but tls.generate=false (helm template hoard --namespace hoard-system'; \
	   echo '# --set tls.generate=false); do not edit. Create the Secret hoard-tls first:'; \
	   echo '#   hoard certs DIR && kubectl -n hoard-system create secret generic hoard-tls --from-file=DIR'; \
	   $(HELM) template hoard deploy/helm/hoard --namespace hoard-system --set tls.generate=false; } > $(MANIFESTS)

clean:
	rm -rf bin build
