package mounter

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"

	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/fusefd"
)

// Operations a Request may ask for.
const (
	// OpServe serves a staged volume on the /dev/fuse descriptor that follows
	// the request (fusefd.Send, with the volume ID as its metadata).
	OpServe = "serve"
	// OpList describes every session and backend.
	OpList = "list"
	// OpPing answers with the mounter's version and process ID.
	OpPing = "ping"
	// OpDrop forgets a volume that the plugin unstaged: it waits a little
	// for the volume's sessions to end and says how many did not.
	OpDrop = "drop"
)

// maxFrame bounds one request or response: a volume description, a list of
// a few thousand sessions.
const maxFrame = 4 << 20

// frameMagic starts every frame ("hoard mounter, version 1"); it is not
// fusefd's "hfd1", so a descriptor message sent in the wrong place fails
// loudly.
const frameMagic = "hmr1"

// Request is one request to the mounter. Its JSON form travels only over the
// mounter's socket (mode 0600): it carries credentials, so it is never
// logged, and String redacts them.
type Request struct {
	Op string `json:"op"`

	// VolumeID names the volume (OpServe, OpDrop).
	VolumeID string `json:"volumeID,omitempty"`
	// StagingPath is where the plugin mounted the volume, for list and logs;
	// the mounter never touches it (it may live in another mount namespace).
	StagingPath string `json:"stagingPath,omitempty"`
	// Device is the mount's device number ("major:minor", as
	// /proc/self/mountinfo shows it): the identity of one FUSE connection,
	// which the plugin compares with what is mounted on a path.
	Device string `json:"device,omitempty"`
	// Source is the bucket and prefix to serve (OpServe).
	Source *Source `json:"source,omitempty"`
	// View sets the FUSE view's options; zero fields take the defaults.
	View View `json:"view"`
	// Credentials for the bucket; nil means the mounter's own ambient chain
	// (environment, pod identity, instance role).
	Credentials *Credentials `json:"credentials,omitempty"`
	// CacheCluster names the cache cluster to read through; "" means the
	// mounter's default (--cluster), or its embedded cache without --etcd.
	CacheCluster string `json:"cacheCluster,omitempty"`
	// Restore says the volume was served before and its server died: a
	// bucket that cannot be listed right now (store down, credentials
	// rotated) is logged rather than refused, since what the cache holds
	// can still be read and refusing leaves the volume broken anyway.
	Restore bool `json:"restore,omitempty"`
}

// String describes r without credentials.
func (r Request) String() string {
	src := "<none>"
	if r.Source != nil {
		src = r.Source.String()
	}
	return fmt.Sprintf("Request{Op:%s VolumeID:%q StagingPath:%q Device:%s Source:%s Credentials:%s CacheCluster:%q}",
		r.Op, r.VolumeID, r.StagingPath, r.Device, src, r.Credentials, r.CacheCluster)
}

// GoString is String, so that %#v redacts too.
func (r Request) GoString() string { return r.String() }

// LogValue describes r for slog without credentials.
func (r Request) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Source is an S3 bucket, a prefix in it, and how to reach it.
type Source struct {
	// Endpoint is host[:port]; "" means Amazon S3.
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix,omitempty"`
	PathStyle bool   `json:"pathStyle,omitempty"`
	Insecure  bool   `json:"insecure,omitempty"`
}

// String is the source as a URI, e.g. s3://host:9000/bucket/prefix/.
func (s Source) String() string {
	host := s.Endpoint
	if host == "" {
		host = "aws"
	}
	return "s3://" + host + "/" + s.Bucket + "/" + s.Prefix
}

// View are the FUSE view's options. Nil and zero fields take the mounter's
// defaults (owner root, modes 0444 and 0555, metadata cached for an hour).
type View struct {
	UID      *uint32 `json:"uid,omitempty"`
	GID      *uint32 `json:"gid,omitempty"`
	FileMode uint32  `json:"fileMode,omitempty"`
	DirMode  uint32  `json:"dirMode,omitempty"`
	// MetadataTTL nil means the default; 0 caches nothing.
	MetadataTTL *time.Duration `json:"metadataTTL,omitempty"`
}

// Credentials are static S3 credentials. String, GoString and LogValue never
// show the secret key or the token; the JSON form does, for the socket only.
type Credentials struct {
	AccessKeyID     string `json:"accessKeyID"`
	SecretAccessKey string `json:"secretAccessKey"`
	SessionToken    string `json:"sessionToken,omitempty"`
}

// String shows the access key's last four characters and nothing else.
func (c *Credentials) String() string {
	if c == nil {
		return "ambient"
	}
	return "Credentials{AccessKeyID:" + maskKey(c.AccessKeyID) + " SecretAccessKey:<redacted>}"
}

// GoString is String.
func (c *Credentials) GoString() string { return c.String() }

// LogValue is String.
func (c *Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// ID is a short, stable fingerprint of the credentials ("ambient" for nil):
// equal credentials give equal IDs, and the ID reveals nothing usable (12 hex
// digits of SHA-256 over all three fields).
func (c *Credentials) ID() string {
	if c == nil {
		return "ambient"
	}
	h := sha256.New()
	for _, f := range []string{c.AccessKeyID, c.SecretAccessKey, c.SessionToken} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func maskKey(k string) string {
	if len(k) <= 4 {
		return "****"
	}
	return "****" + k[len(k)-4:]
}

// Response is the mounter's answer to one request.
type Response struct {
	OK bool `json:"ok"`
	// Error says what failed, and Code which gRPC code the CSI call that
	// asked should return (codes.Code as a number).
	Error string `json:"error,omitempty"`
	Code  uint32 `json:"code,omitempty"`

	// Session is the session OpServe started.
	Session *SessionInfo `json:"session,omitempty"`
	// Sessions and Backends answer OpList.
	Sessions []SessionInfo `json:"sessions,omitempty"`
	Backends []BackendInfo `json:"backends,omitempty"`
	// Cache says which cache the mounter reads through (OpList).
	Cache *CacheInfo `json:"cache,omitempty"`
	// Version and PID answer OpPing (and OpList).
	Version string `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Remaining answers OpDrop: sessions of the volume still running (a
	// lazily unmounted volume with files still open).
	Remaining int `json:"remaining,omitempty"`
}

// CacheInfo is the cache a mounter reads through: a cluster in etcd, or
// its embedded worker.
type CacheInfo struct {
	Etcd    []string `json:"etcd,omitempty"`
	Cluster string   `json:"cluster,omitempty"` // the default cluster
	// Embedded is the embedded worker's state, without --etcd.
	Embedded *worker.Status `json:"embedded,omitempty"`
	// TLSFiles are the paths of the mounter's client certificate for the
	// workers' mutual TLS (never their contents): hoard status, run in the
	// mounter's pod, uses the same.
	TLSFiles *TLSFiles `json:"tlsFiles,omitempty"`
}

// TLSFiles are the PEM files of a client certificate and its CA.
type TLSFiles struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// SessionInfo describes one FUSE session: one staged volume served on one
// /dev/fuse connection.
type SessionInfo struct {
	ID          uint64    `json:"id"`
	VolumeID    string    `json:"volumeID"`
	StagingPath string    `json:"stagingPath"`
	Device      string    `json:"device,omitempty"`
	Source      string    `json:"source"`
	Backend     string    `json:"backend"`
	Started     time.Time `json:"started"`
	// Traffic is what the volume's readers read so far (in list answers).
	Traffic *Traffic `json:"traffic,omitempty"`
}

// Traffic is what one volume's readers read, by where it came from.
type Traffic struct {
	// ReadBytes maps a source (memory, worker, bucket) to the bytes read
	// from it.
	ReadBytes map[string]int64 `json:"readBytes"`
	// BypassedBytes were fetched from the bucket directly because no
	// cache worker could serve them; LastBypass and BypassCause say when
	// that last happened and why.
	BypassedBytes int64      `json:"bypassedBytes"`
	LastBypass    *time.Time `json:"lastBypass,omitempty"`
	BypassCause   string     `json:"bypassCause,omitempty"`
	Failovers     int64      `json:"failovers"`
	Errors        int64      `json:"errors"`
}

// BackendInfo describes one cache backend: a cache client shared by every
// volume of one (endpoint, bucket, credentials, cache cluster).
type BackendInfo struct {
	// ID is derived from the backend's key; it holds the credentials' ID,
	// never the credentials.
	ID       string    `json:"id"`
	Bucket   string    `json:"bucket"`
	Endpoint string    `json:"endpoint,omitempty"`
	Cluster  string    `json:"cluster,omitempty"`
	Refs     int       `json:"refs"`
	Created  time.Time `json:"created"`
}

// Error is a failure the mounter reported, with the gRPC code it suggests.
type Error struct {
	Code codes.Code
	Msg  string
}

func (e *Error) Error() string { return "mounter: " + e.Msg }

// errResponse turns err into a Response: an *Error keeps its code, anything
// else is Internal.
func errResponse(err error) *Response {
	var me *Error
	if errors.As(err, &me) {
		return &Response{Error: me.Msg, Code: uint32(me.Code)}
	}
	return &Response{Error: err.Error(), Code: uint32(codes.Internal)}
}

// legacyNames are the snake_case names hmr1's first release gave two fields
// of Request and SessionInfo, before the protocol took the camelCase of the
// rest of its fields, of CSI and of the node's state files. They are
// written beside the camelCase ones and read when those are absent, so that
// a mounter (upgraded rarely: restarting it breaks every mount) and a node
// plugin of either release understand each other. Drop them once no
// mounter of that release runs.
type legacyNames struct {
	VolumeID    string `json:"volume_id,omitempty"`
	StagingPath string `json:"staging_path,omitempty"`
}

// MarshalJSON writes r with the camelCase names and the legacy ones.
func (r Request) MarshalJSON() ([]byte, error) {
	type plain Request
	return json.Marshal(struct {
		plain
		legacyNames
	}{plain(r), legacyNames{r.VolumeID, r.StagingPath}})
}

// UnmarshalJSON reads r from either names.
func (r *Request) UnmarshalJSON(b []byte) error {
	type plain Request
	var v struct {
		plain
		legacyNames
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Request(v.plain)
	r.VolumeID = cmp.Or(r.VolumeID, v.legacyNames.VolumeID)
	r.StagingPath = cmp.Or(r.StagingPath, v.legacyNames.StagingPath)
	return nil
}

// MarshalJSON writes s with the camelCase names and the legacy ones.
func (s SessionInfo) MarshalJSON() ([]byte, error) {
	type plain SessionInfo
	return json.Marshal(struct {
		plain
		legacyNames
	}{plain(s), legacyNames{s.VolumeID, s.StagingPath}})
}

// UnmarshalJSON reads s from either names.
func (s *SessionInfo) UnmarshalJSON(b []byte) error {
	type plain SessionInfo
	var v struct {
		plain
		legacyNames
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = SessionInfo(v.plain)
	s.VolumeID = cmp.Or(s.VolumeID, v.legacyNames.VolumeID)
	s.StagingPath = cmp.Or(s.StagingPath, v.legacyNames.StagingPath)
	return nil
}

// writeFrame writes v as one hmr1 frame (fusefd.WriteFrame) of JSON.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fusefd.WriteFrame(w, frameMagic, b, maxFrame)
}

// readFrame reads exactly one hmr1 frame into v. It reads no byte past the
// frame, so a descriptor message that follows stays intact on the socket.
func readFrame(r io.Reader, v any) error {
	b, err := fusefd.ReadFrame(r, frameMagic, maxFrame)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
