package metrics

// ID names one metric of the table.
type ID int

// The metrics, by the process that exports them. The order is the order of
// docs/metrics.md.
const (
	// Every process.
	BuildInfo ID = iota

	// Workers (hoard worker, the embedded cache of hoard mount and the
	// mounter, hoard dev).
	WorkerRequests
	WorkerServedBytes
	WorkerPageHits
	WorkerPageMisses
	WorkerBucketRequests
	WorkerBucketErrors
	WorkerBucketRefusals
	WorkerRefusalRetries
	WorkerFetchedBytes
	WorkerListCacheHits
	WorkerStoreChecksumMismatches
	WorkerAuthChecks
	WorkerAuthGraced
	PagestoreUsedBytes
	PagestoreCapacityBytes
	PagestorePages
	PagestoreEvictions
	PagestoreCorruptPages
	PagestoreDegraded
	PagestoreDiskErrors
	PagestoreBypassed
	MembershipLeaseRenewals
	MembershipLeaseLapses

	// Mounts (the mounter, per staged volume; hoard mount, one volume).
	MountVolumes
	MountReadBytes
	MountBypassedBytes
	MountFailovers
	MountReadaheadBytes
	MountFuseOpDuration
	MountMetadataLookups
	MountMetadataBucketRequests
	MountErrors

	// CSI plugins (hoard csi, controller and node).
	CSICallDuration
	CSINodeStagedVolumes

	// The coordinator (hoard coordinator; hoard dev).
	ClusterWorkers
	ClusterWorkerLapses
	CoordinatorUp
	CoordinatorHasLeader
	CoordinatorDBBytes

	numIDs
)

// Type is a metric's Prometheus type.
type Type int

// Types.
const (
	Counter Type = iota
	Gauge
	Histogram
)

func (t Type) String() string {
	return [...]string{"counter", "gauge", "histogram"}[t]
}

// Def is one metric: everything about it that Prometheus and the docs show.
type Def struct {
	Name string
	Type Type
	// Unit is the base unit the name ends with ("bytes", "seconds"), or ""
	// for a count.
	Unit string
	// Labels are the variable labels, each with a bounded set of values
	// (LabelValues says which).
	Labels []string
	Help   string
	// Component is who exports it: worker, mount, csi, coordinator, process.
	Component string
}

// Label values that are fixed sets. Volume IDs, worker IDs, CSI methods
// and gRPC codes are bounded by what runs: the volumes staged on a node, the
// workers in a process, the CSI methods, the gRPC codes.
const (
	SourceMemory = "memory" // the mount's in-memory hot tier
	SourceWorker = "worker" // a cache worker (the embedded one included)
	SourceBucket = "bucket" // the bucket directly: the cache was bypassed

	OpGet  = "get"
	OpList = "list"
	OpHead = "head"

	FuseLookup  = "lookup"
	FuseReaddir = "readdir"
	FuseOpen    = "open"
	FuseRead    = "read"

	ResultHit  = "hit"
	ResultMiss = "miss"

	OpRead  = "read"
	OpWrite = "write"

	StateRegistered = "registered"
	StateAlive      = "alive"
)

// table is the one definition of every metric. Never modified.
var table = [numIDs]Def{
	BuildInfo: {Name: "hoard_build_info", Type: Gauge, Labels: []string{"version", "role"}, Component: "process",
		Help: "Always 1: the hoard version and the role (worker, mount, mounter, csi-controller, csi-node, csi-all, coordinator, dev) of the process."},

	WorkerRequests: {Name: "hoard_worker_requests_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Range reads served to clients."},
	WorkerServedBytes: {Name: "hoard_worker_served_bytes_total", Type: Counter, Unit: "bytes", Labels: []string{"worker"}, Component: "worker",
		Help: "Bytes sent to clients."},
	WorkerPageHits: {Name: "hoard_worker_page_hits_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Pages served from the page store (each saved a part of a GET to the bucket)."},
	WorkerPageMisses: {Name: "hoard_worker_page_misses_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Pages that had to come from the bucket."},
	WorkerBucketRequests: {Name: "hoard_worker_bucket_requests_total", Type: Counter, Labels: []string{"worker", "op"}, Component: "worker",
		Help: "Requests sent to buckets: op=get (ranged GETs of misses and warms) or op=list (listing pages for the shared listing cache)."},
	WorkerBucketErrors: {Name: "hoard_worker_bucket_errors_total", Type: Counter, Labels: []string{"worker", "op"}, Component: "worker",
		Help: "Requests to buckets that failed, by op (get, list). GETs the bucket refused are counted apart (hoard_worker_bucket_refusals_total)."},
	WorkerBucketRefusals: {Name: "hoard_worker_bucket_refusals_total", Type: Counter, Labels: []string{"worker", "reason"}, Component: "worker",
		Help: "GETs the bucket refused, by reason: denied (the reader's credentials do not allow the object: a tenant reading past its rights), not_found (deleted since listed), changed (a new version since opened). The bucket's answers, not its failures."},
	WorkerRefusalRetries: {Name: "hoard_worker_refusal_retries_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Pages fetched again with a reader's own credentials after the fetch it joined, started for another reader, was refused: a tenant without rights reading an object just before one with them."},
	WorkerFetchedBytes: {Name: "hoard_worker_fetched_bytes_total", Type: Counter, Unit: "bytes", Labels: []string{"worker"}, Component: "worker",
		Help: "Bytes read from buckets."},
	WorkerListCacheHits: {Name: "hoard_worker_list_cache_hits_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Listing pages served from the shared listing cache (each saved a LIST to the bucket)."},
	WorkerStoreChecksumMismatches: {Name: "hoard_worker_store_checksum_mismatches_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Objects whose bytes did not match the store's MD5 ETag (--verify-store-checksum): served to nobody, cached nowhere."},
	WorkerAuthChecks: {Name: "hoard_worker_auth_checks_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "HEADs with a reader's credentials that confirm it may read an object before cached bytes are served (one per reader, object and --auth-ttl; a cold read is confirmed by its own GET instead, which makes none)."},
	WorkerAuthGraced: {Name: "hoard_worker_auth_graced_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Requests served on a reader's earlier confirmation (within --auth-ttl plus --auth-grace) because the store could not answer the HEAD."},
	PagestoreUsedBytes: {Name: "hoard_pagestore_used_bytes", Type: Gauge, Unit: "bytes", Labels: []string{"worker"}, Component: "worker",
		Help: "Disk bytes held by cached pages, records included."},
	PagestoreCapacityBytes: {Name: "hoard_pagestore_capacity_bytes", Type: Gauge, Unit: "bytes", Labels: []string{"worker"}, Component: "worker",
		Help: "Disk bytes the page store may use for pages (its capacity less the slot records' reserve)."},
	PagestorePages: {Name: "hoard_pagestore_pages", Type: Gauge, Labels: []string{"worker"}, Component: "worker",
		Help: "Pages cached."},
	PagestoreEvictions: {Name: "hoard_pagestore_evictions_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Pages evicted to stay within capacity."},
	PagestoreCorruptPages: {Name: "hoard_pagestore_corrupt_pages_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Pages dropped because their checksum failed on read (refetched, never served)."},
	PagestoreDegraded: {Name: "hoard_pagestore_degraded", Type: Gauge, Labels: []string{"worker", "fault"}, Component: "worker",
		Help: "1 while the page store's disk is faulted and the worker passes pages through from the bucket without caching them, by fault: full (writes fail with ENOSPC), read_only (writes fail with EROFS), io_error (reads or writes fail with EIO or another error: the disk is not read either). Cached pages are served while they can be read. The store tries its disk again every 10 s and logs the fault once when it begins and once when it ends."},
	PagestoreDiskErrors: {Name: "hoard_pagestore_disk_errors_total", Type: Counter, Labels: []string{"worker", "op"}, Component: "worker",
		Help: "Page reads and writes that failed on the cache disk, by op (read, write); each degrades the store (hoard_pagestore_degraded)."},
	PagestoreBypassed: {Name: "hoard_pagestore_bypassed_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Page reads and writes that skipped the cache disk because it is faulted (the page was served from the bucket, uncached)."},
	MembershipLeaseRenewals: {Name: "hoard_membership_lease_renewals_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Renewals of the worker's liveness lease in etcd."},
	MembershipLeaseLapses: {Name: "hoard_membership_lease_lapses_total", Type: Counter, Labels: []string{"worker"}, Component: "worker",
		Help: "Times the worker's liveness lease was lost (etcd unreachable or slow for a TTL) and the worker registered again."},

	MountVolumes: {Name: "hoard_mount_volumes", Type: Gauge, Component: "mount",
		Help: "Volumes this process serves over FUSE."},
	MountReadBytes: {Name: "hoard_mount_read_bytes_total", Type: Counter, Unit: "bytes", Labels: []string{"volume", "source"}, Component: "mount",
		Help: "Bytes returned to readers of the volume, by where they came from: source=memory (the mount's hot tier, read before), worker (a cache worker), bucket (the bucket directly: the cache was bypassed). The first read of a page that readahead fetched counts as the fetch's source."},
	MountBypassedBytes: {Name: "hoard_mount_bypassed_bytes_total", Type: Counter, Unit: "bytes", Labels: []string{"volume"}, Component: "mount",
		Help: "Bytes the volume's reads (readahead included) fetched from the bucket directly because no cache worker could serve them (none alive, all failed, or the bucket failed at the worker). Anything above 0 means the cache is not caching; the mount logs why."},
	MountFailovers: {Name: "hoard_mount_failovers_total", Type: Counter, Labels: []string{"volume"}, Component: "mount",
		Help: "Worker reads that failed and went on to the next worker in routing order."},
	MountReadaheadBytes: {Name: "hoard_mount_readahead_bytes_total", Type: Counter, Unit: "bytes", Labels: []string{"volume"}, Component: "mount",
		Help: "Bytes asked for ahead of sequential readers (pages already in memory or in flight are not fetched again)."},
	MountFuseOpDuration: {Name: "hoard_mount_fuse_op_duration_seconds", Type: Histogram, Unit: "seconds", Labels: []string{"volume", "op"}, Component: "mount",
		Help: "Time to answer FUSE operations, by op: lookup, readdir (loading a listing or its next page), open, read. The _count series counts operations."},
	MountMetadataLookups: {Name: "hoard_mount_metadata_lookups_total", Type: Counter, Labels: []string{"volume", "result"}, Component: "mount",
		Help: "Name lookups and listings answered by the metadata cache (result=hit) or by asking the bucket or the shared listing cache (result=miss)."},
	MountMetadataBucketRequests: {Name: "hoard_mount_metadata_requests_total", Type: Counter, Labels: []string{"volume", "op"}, Component: "mount",
		Help: "Metadata requests the volume made: op=head (stat of one key) or op=list (one listing page; through the shared listing cache with a cache cluster)."},
	MountErrors: {Name: "hoard_mount_errors_total", Type: Counter, Labels: []string{"volume", "kind"}, Component: "mount",
		Help: "FUSE operations that failed, by kind: access_denied (EACCES), timeout (EIO after the operation timeout), interrupted (EINTR), changed (EIO: the object changed while open), io (EIO, any other cause; logged)."},

	CSICallDuration: {Name: "hoard_csi_call_duration_seconds", Type: Histogram, Unit: "seconds", Labels: []string{"method", "code"}, Component: "csi",
		Help: "CSI calls by method (e.g. NodeStageVolume) and gRPC code (OK, InvalidArgument, ...), and their duration. The _count series counts calls."},
	CSINodeStagedVolumes: {Name: "hoard_csi_node_staged_volumes", Type: Gauge, Component: "csi",
		Help: "Volumes the node plugin has staged (its state records)."},

	ClusterWorkers: {Name: "hoard_cluster_workers", Type: Gauge, Labels: []string{"state"}, Component: "coordinator",
		Help: "Workers of the cache cluster by state: registered (all), alive (holding a liveness lease)."},
	ClusterWorkerLapses: {Name: "hoard_cluster_worker_lapses_total", Type: Counter, Component: "coordinator",
		Help: "Times a registered worker's liveness lease went away (worker stopped, died, or could not renew), as the coordinator saw it."},
	CoordinatorUp: {Name: "hoard_coordinator_up", Type: Gauge, Component: "coordinator",
		Help: "1 if the coordinator's etcd answered a status request at scrape time, else 0."},
	CoordinatorHasLeader: {Name: "hoard_coordinator_has_leader", Type: Gauge, Component: "coordinator",
		Help: "1 if the coordinator's etcd member knows a leader (the cluster has quorum), else 0."},
	CoordinatorDBBytes: {Name: "hoard_coordinator_db_bytes", Type: Gauge, Unit: "bytes", Component: "coordinator",
		Help: "Size of the coordinator's etcd database."},
}

// Def returns the definition of id.
func (id ID) Def() Def {
	d := table[id]
	d.Labels = append([]string(nil), d.Labels...)
	return d
}

// Name is the metric's name.
func (id ID) Name() string { return table[id].Name }

// All returns every metric's ID, in table order.
func All() []ID {
	ids := make([]ID, numIDs)
	for i := range ids {
		ids[i] = ID(i)
	}
	return ids
}

// LatencyBuckets are the upper bounds, in seconds, of every latency
// histogram: from 50 µs (a hot-tier hit) to a minute (a cold fetch queued
// behind others at a slow bucket).
func LatencyBuckets() []float64 {
	b := make([]float64, len(latencyBounds))
	for i, d := range latencyBounds {
		b[i] = d.Seconds()
	}
	return b
}
