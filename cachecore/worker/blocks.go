package worker

import (
	"context"
	"fmt"
	"math/bits"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
)

// Blocks. A random read of 1 MiB at an unaligned offset spans two pages;
// fetching both whole moved twice the bytes a direct ranged GET moves. A
// request with Blocks set is served, and fetched on a miss, in blocks of
// BlockBytes instead: the parts of pages the read needs. Each block is
// cached under a key of its own (the object's full identity and the block's
// number with blockBit set, which no page number reaches: 5 TiB in pages of
// 4 KiB or more needs under 31 bits), checksummed over that key and its
// bytes like a page, from the fetch to the reader. A page cached whole
// serves its blocks itself (their checksums taken from the page's bytes
// just verified against the page's own).
const (
	// BlockBytes is the size of a block.
	BlockBytes = 64 << 10
	blockBit   = 1 << 31
)

// Units is how an object is cut for caching: in pages or in blocks.
type Units struct {
	Size int64  // bytes per unit
	bit  uint32 // set in every key's number: blockBit for blocks
}

// PagesOf are units of pageSize bytes; BlockUnits are blocks.
func PagesOf(pageSize int64) Units { return Units{Size: pageSize} }

// BlockUnits are the units of a Blocks request.
var BlockUnits = Units{Size: BlockBytes, bit: blockBit}

// Key is the cache key of unit i of the object id.
func (u Units) Key(id objid.ID, i int64) pagestore.Key {
	return pagestore.Key{File: id, Page: u.bit | uint32(i)}
}

// Index is the unit number of k.
func (u Units) Index(k pagestore.Key) int64 { return int64(k.Page &^ u.bit) }

// Off is where unit k starts in its object.
func (u Units) Off(k pagestore.Key) int64 { return u.Index(k) * u.Size }

// Len is the length unit k must have in an object of size bytes.
func (u Units) Len(k pagestore.Key, size int64) int64 { return min(u.Size, size-u.Off(k)) }

// BlocksFit reports whether blocks can be used with pages and chunks of
// these sizes: a page must be a power-of-two number of blocks, and so must
// a chunk (runs of blocks are aligned to chunks by their key numbers).
func BlocksFit(pageSize, chunkSize int64) bool {
	pow2 := func(n int64) bool { return n > 0 && bits.OnesCount64(uint64(n)) == 1 }
	return pageSize > BlockBytes && pageSize%BlockBytes == 0 && pow2(pageSize/BlockBytes) &&
		(chunkSize == 0 || chunkSize%BlockBytes == 0 && pow2(chunkSize/BlockBytes))
}

// validBlocks reports a Blocks request that does not start and end on block
// boundaries (or at the object's end), or a worker whose pages cannot be
// cut into blocks.
func (w *Worker) validBlocks(req Request) error {
	end := req.Off + req.Len
	switch {
	case !BlocksFit(w.pageSize, 0):
		return fmt.Errorf("blocks of %d bytes do not fit this worker's pages of %d", BlockBytes, w.pageSize)
	case req.Off%BlockBytes != 0 || (end%BlockBytes != 0 && end != req.Size):
		return fmt.Errorf("a read of blocks must start and end on blocks of %d bytes: range at %d of %d bytes", BlockBytes, req.Off, req.Len)
	}
	return nil
}

// readBlocks serves a Blocks request: each block from its page if that is
// cached whole, else from the store's blocks, fetching the missing ones in
// runs over the stretches of pages not cached whole.
func (w *Worker) readBlocks(ctx context.Context, req Request, id objid.ID, out SumTaker) error {
	end := req.Off + req.Len
	bp := w.bufs.Get().(*[]byte)
	defer w.bufs.Put(bp)
	pages := PagesOf(w.pageSize)
	var page []byte // the current page, if cached whole
	pageNo := int64(-1)
	for pos := req.Off; pos < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := BlockUnits.Key(id, pos/BlockBytes)
		n := BlockUnits.Len(k, req.Size)
		if p := pos / w.pageSize; p != pageNo {
			pageNo, page = p, w.wholePage(req, pages.Key(id, p), *bp)
		}
		var data []byte
		var sum uint32
		owned := false
		if page != nil {
			start := pos - pageNo*w.pageSize
			data = page[start : start+n]
			sum = pagestore.Checksum(k, data)
			w.stats.PageHits.Add(1)
		} else {
			// The page buffer is free: no page is cached whole here.
			var err error
			data, sum, err = w.unit(ctx, req, BlockUnits, k, w.lastUncached(req, id, pos, end), *bp)
			if err != nil {
				return err
			}
			owned = &data[0] != &(*bp)[0] // fetched: nobody modifies it
		}
		if err := out.TakeSummed(data, sum, owned); err != nil {
			return fmt.Errorf("send block: %w", err)
		}
		w.stats.BytesServed.Add(n)
		pos += n
	}
	return nil
}

// wholePage returns page k read into buf if the store holds it whole, else nil.
func (w *Worker) wholePage(req Request, k pagestore.Key, buf []byte) []byte {
	if !w.store.Contains(k) {
		return nil
	}
	n, ok := w.store.Get(k, buf)
	if !ok || int64(n) != req.pageLen(k.Page, w.pageSize) {
		return nil
	}
	return buf[:n]
}

// lastUncached is the last block before end, from pos on, whose page is not
// cached whole: a run of missing blocks fetched from pos stops there.
func (w *Worker) lastUncached(req Request, id objid.ID, pos, end int64) pagestore.Key {
	stop := end
	for p := pos/w.pageSize + 1; p*w.pageSize < end; p++ {
		if w.store.Contains(PagesOf(w.pageSize).Key(id, p)) {
			stop = p * w.pageSize
			break
		}
	}
	return BlockUnits.Key(id, (stop-1)/BlockBytes)
}
