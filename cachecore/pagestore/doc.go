// Package pagestore keeps pages of cached objects on a worker's local disk.
//
// A page is up to PageSize bytes (default 1 MiB) of one version of one object,
// named by a Key (the object's 128-bit identity, objid.ID, and page number). Callers put whole pages and
// read whole pages; the store never knows about buckets, chunks, routing or
// mounts, and never fetches anything: a miss is the caller's business.
//
// # Layout on disk
//
//	dir/meta.json            format version and page size (fixed for the dir)
//	dir/slab-00000.dat       page slots: slot i at offset (i % slotsPerFile) * PageSize
//	dir/slab-00000.rec       one 48-byte record per slot: key, length, CRC-32C, record CRC
//
// Slab files are sparse. A page of n bytes occupies roundup(n, blockSize) bytes
// of disk; a freed slot is punched out (fallocate PUNCH_HOLE) before it is
// reused, so small pages (the tail of a file, a 100 KiB image) cost what they
// hold, not a whole slot.
//
// # Invariants
//
//  1. Bytes on disk never exceed Capacity. used counts the blocks of every live,
//     reserved and not-yet-punched page; a slot is handed out only when
//     used + need <= budget, and budget leaves room for the record files.
//  2. A page is returned only if its CRC-32C, computed over its full key (object
//     identity and page number) and its bytes, matches the one recorded when it
//     was written: what is returned is intact and belongs to the identity asked
//     for. A mismatch (torn write, bit rot, a file edited behind our back)
//     drops the page; the caller sees a miss and refetches. Corrupt bytes are
//     never returned.
//  3. The index survives a restart: a page is indexed in memory only after its
//     data and then its record were written, so after kill -9 every indexed
//     page is found again on Open. A record whose data was lost fails invariant 2
//     on its first read.
//  4. A slot is punched and its record zeroed before the slot is reused, so a
//     reader that raced with eviction reads either the old page, zeros, or the
//     new page, and the CRC check (plus a recheck of the index) tells which.
//
// # A failing disk
//
// A write that fails (ENOSPC, EROFS, EIO) or a read that fails with an I/O
// error (not a checksum: that is a corrupt page, dropped) degrades the
// store (Health, Fault): Puts return ErrDegraded at once without touching
// the disk, and with FaultIO Gets miss without reading it, so the caller
// serves every page from the bucket (pass-through) and a dead disk costs no
// timeouts. Once every FaultRetry (10 s) one Put, and with FaultIO one Get,
// tries the disk again; a write that succeeds ends the fault. Pages cached
// before stay indexed and are served again (CRC-checked) when their reads
// work. The fault is logged once when it begins and once when it ends.
//
// # Eviction
//
// S3-FIFO (Yang et al., SOSP 2023), counted in bytes: new pages enter a small
// FIFO (10% of the budget); a page hit while there moves to the main FIFO when it
// reaches the head, others leave and are remembered in a ghost set of
// fingerprints. A page whose fingerprint is in the ghost set enters main
// directly. Main is a FIFO with reinsertion (a 2-bit hit counter, CLOCK-like).
// One sequential scan therefore passes through the small queue without flushing
// the hot set in main. Moves between queues are metadata only: slots are not
// tied to queues, so nothing is copied on disk.
//
// # Memory
//
// Per cached page the index holds one table slot (a 4-byte entry number) and
// one 40-byte entry (20-byte key), about 77 bytes; BenchmarkIndexMemory measures it
// for ten million pages.
package pagestore
