// Package fuseview shows a bucket, or a prefix of one, as a read-only POSIX
// directory tree through FUSE (a go-fuse v2 fs tree).
//
// What flows in: a ufs.UFS (Stat and List, for metadata), a prefix, and a
// Reader (the cache client) that serves file bytes. What flows out: a Root
// node to Mount. Lookups and readdir are answered from a metadata cache of
// directory listings and single stats (metaCache, its own file), kept for
// MetadataTTL, with missing names remembered for NegativeTTL; the first
// readdir of a directory lists it whole, in pages, and a lookup in a
// directory whose listing is cached and fresh makes no request. A read goes
// to a client.Reader made for the open file at open time (one version of the
// object), which reads ahead on sequential access; release drops it.
//
// It owns: turning a bucket listing into a tree (the rules below), metadata
// caching with TTLs and a bound on memory, the kernel's cache timeouts, and
// mapping errors to errno. It never: writes to a bucket (every change is
// EROFS and the mount is "ro"), caches file bytes itself (the cache client
// and the kernel's page cache do), or knows about CSI, pods or credentials.
//
// # From keys to a tree
//
// Objects are files and common prefixes (delimiter "/") are directories.
// A path a/b/c is the key prefix+"a/b/c"; a directory a/b is the prefix
// prefix+"a/b/". Keys that POSIX cannot show follow these rules:
//
//   - A name (one path segment) that is empty (a//b), "." or "..", longer than
//     255 bytes, or contains NUL cannot be represented: it is hidden from
//     listings and lookups (a lookup of a longer name is ENAMETOOLONG), and
//     everything under it is unreachable. Each such key is logged once, at
//     debug level.
//   - A key longer than 1024 bytes (S3's limit) does not exist: lookups of
//     such paths answer ENOENT without asking the bucket.
//   - A key that is both an object and a prefix (a and a/b): the directory
//     wins and the object a is hidden. (In a directory too large to cache, see
//     below, readdir may list such a name twice; lookups still give the
//     directory.)
//   - A directory marker, an object whose key ends in "/" (dir/, usually of
//     size 0), makes the directory exist and is otherwise invisible; its bytes
//     are never shown.
//   - Nothing escapes the mount root: keys are only ever built as prefix plus
//     validated names joined by "/", and the prefix itself is checked by
//     NewRoot.
//
// # Metadata and the kernel
//
// A name found in a fresh listing needs no request. A name not in a fresh
// listing is looked up with a HEAD of the key and, in parallel, a one-key
// LIST of key+"/" (the directory-wins rule needs both); that result is
// cached on its own, and the directory's whole listing is fetched in the
// background so its other names are then free. A name missing from a cached
// listing is believed missing for NegativeTTL after the listing was fetched,
// then asked for again, so new objects show up within NegativeTTL in lookups
// and within MetadataTTL in readdir; a deleted object stays visible until
// the answer that showed it expires (MetadataTTL).
//
// The kernel's entry and attribute timeouts are set per reply to the time the
// answer has left in hoard's cache (capped by Options.EntryTimeout and
// AttrTimeout), so the kernel never holds an answer longer than hoard would.
// A missing name is the exception: go-fuse has the kernel cache a miss only
// for one per-mount time, min(NegativeTTL, EntryTimeout), so a name may stay
// missing for up to twice NegativeTTL.
//
// Files report the object's size and modification time cut to whole seconds
// (an S3 listing has milliseconds, a HEAD only seconds; the time must not
// depend on which one answered), mode FileMode, one link, and a block size
// of 1 MiB so that cp and cat read in large blocks. Directories report the
// newest modification time in their cached listing, else the mount time.
//
// With Options.ListingDir, complete listings are also kept on disk (see
// listingStore): a new tree over the same source and ListingScope reads them
// back instead of listing the bucket, while they are within MetadataTTL of
// their fetch.
//
// Memory is bounded: the cache holds at most MaxCachedEntries names (listing
// entries plus single stats, about 150 bytes each), evicting the least
// recently used listings and stats first. A directory with more names than
// that is never cached: readdir streams it page by page, and lookups in it go
// to the bucket (and their single results are cached).
//
// # Versions and opens
//
// Objects are immutable per version (ETag), and a file node is one version
// for its whole life: when a lookup finds a new version it makes a new
// inode, so no page of the old version can be mixed into the new one; a
// getattr of an old node that finds the object changed keeps answering for
// its own version and has the kernel look the name up again. So the kernel
// keeps file pages across opens (FOPEN_KEEP_CACHE).
//
// Where the kernel supports it, opens cost no round trip: OPEN answers
// ENOSYS, and the kernel then opens and closes every file of the mount
// without asking (FUSE's no-open support) and sends reads with no handle.
// Closes cost none either: FLUSH answers ENOSYS once, and the kernel sends
// no FLUSH again (there is nothing to write back).
// Each node then keeps the readahead state of up to four sequential
// streams, told apart by where each one's next read starts, and drops a
// stream when it reaches the end of the file. MountOptions.KernelOpens
// restores an OPEN (and a reader) per open file.
//
// A read whose object has been overwritten or deleted meanwhile fails with
// EIO (the cache client reports ufs.ErrVersionMismatch or ErrNotFound;
// parts it holds already are still served): the metadata is dropped and the
// kernel told to forget the name, before the read fails, and the node's
// pages, so the next open sees the new version. The extended attribute
// user.hoard.etag of a file is its version. Security labels and POSIX ACLs
// (security.*, system.*) answer EOPNOTSUPP, so ls -l asks once per file
// system instead of twice per file.
//
// # Errors
//
// ufs.ErrNotFound is ENOENT, ErrAccessDenied is EACCES, anything else EIO
// (logged and counted in Stats.Errors). Every operation that reaches the
// bucket or the cache has a timeout (Options.OpTimeout, default 5 minutes)
// and answers EIO when it passes; an operation the caller interrupts answers
// EINTR. Unmount detaches a busy mount lazily and, past its deadline, aborts
// the FUSE connection, so it never hangs on a reader.
package fuseview
