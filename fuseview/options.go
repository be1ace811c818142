package fuseview

import (
	"log/slog"
	"os"
	"time"

	"hoard.dev/hoard/cachecore/client"
)

// Reader makes the per-open-file readers of object versions. *client.Client
// (and so *server.Client) is one.
type Reader interface {
	NewReader(obj client.Object) *client.Reader
}

// Options configure a tree. The zero value gives the defaults.
type Options struct {
	// UID and GID own every file and directory.
	UID, GID uint32
	// SourceOwners shows each file with its owner and permission bits in
	// the source (without write bits), where the source has them (file://),
	// instead of UID, GID and FileMode: a 0600 file stays its owner's. A
	// file whose owner the view does not know is shown as root's, mode 0.
	SourceOwners bool
	// FileMode and DirMode are the permission bits of files and directories
	// (default 0444 and 0555). The mount uses default_permissions, so the
	// kernel enforces them.
	FileMode, DirMode os.FileMode
	// MetadataTTL is how long stats and listings are cached (default 1h:
	// datasets rarely change); negative caches nothing.
	MetadataTTL time.Duration
	// NegativeTTL is how long a missing name stays missing (default 1m);
	// negative caches no missing names.
	NegativeTTL time.Duration
	// EntryTimeout and AttrTimeout cap how long the kernel may keep a name
	// and its attributes without asking again. Each reply gets the time its
	// answer has left in the metadata cache, at most these; 0 means no cap
	// beyond that (effectively MetadataTTL), negative means the kernel caches
	// nothing (every access reaches hoard; for tests).
	EntryTimeout, AttrTimeout time.Duration
	// ListPageSize is the number of keys per LIST request (default and
	// maximum 1000).
	ListPageSize int
	// MaxCachedEntries bounds the metadata cache: listing entries plus
	// single stats, about 150 bytes each (default 500,000).
	MaxCachedEntries int
	// OpTimeout bounds each operation that reaches the bucket or the cache
	// (a read, a lookup, one listing page); when it passes the operation
	// fails with EIO (default 5 minutes). A whole listing gets the same
	// bound per page.
	OpTimeout time.Duration
	// ListingDir keeps complete directory listings on disk, so that the
	// next mount of the same source lists nothing the bucket was asked for
	// within MetadataTTL (for example a cache dir's "listings"); "" keeps
	// them in memory only. ListingScope tells apart the callers whose
	// listings must not be shared, such as different credentials of the
	// same bucket: a listing is only ever read back by the same source and
	// scope. ListingBytes bounds the files (default 128 MiB).
	ListingDir   string
	ListingScope string
	ListingBytes int64
	Logger       *slog.Logger
}

// Defaults.
const (
	DefaultFileMode         os.FileMode = 0o444
	DefaultDirMode          os.FileMode = 0o555
	DefaultMetadataTTL                  = time.Hour
	DefaultNegativeTTL                  = time.Minute
	DefaultListPageSize                 = 1000
	DefaultMaxCachedEntries             = 500_000
	DefaultOpTimeout                    = 5 * time.Minute
	DefaultListingBytes                 = 128 << 20
)

// withDefaults fills in zero fields.
func (o Options) withDefaults() Options {
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.DirMode == 0 {
		o.DirMode = DefaultDirMode
	}
	o.FileMode &= os.ModePerm
	o.DirMode &= os.ModePerm
	if o.MetadataTTL == 0 {
		o.MetadataTTL = DefaultMetadataTTL
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.ListPageSize <= 0 || o.ListPageSize > 1000 {
		o.ListPageSize = DefaultListPageSize
	}
	if o.MaxCachedEntries <= 0 {
		o.MaxCachedEntries = DefaultMaxCachedEntries
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.ListingBytes <= 0 {
		o.ListingBytes = DefaultListingBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// kernelLimit turns an EntryTimeout or AttrTimeout option into a cap on
// kernel timeouts: negative options and an uncached tree give 0.
func (o Options) kernelLimit(opt time.Duration) time.Duration {
	switch {
	case opt < 0 || o.MetadataTTL < 0:
		return 0
	case opt == 0:
		return o.MetadataTTL
	default:
		return opt
	}
}
