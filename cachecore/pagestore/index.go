package pagestore

import (
	"hoard.dev/hoard/cachecore/objid"
)

// Key names one page: a version of an object and the page's number in it.
type Key struct {
	File objid.ID
	Page uint32
}

// PageNo is k's page number (for flight.Group).
func (k Key) PageNo() uint32 { return k.Page }

// WithPage is the key of page n of k's file (for flight.Group).
func (k Key) WithPage(n uint32) Key { return Key{File: k.File, Page: n} }

// fingerprint is the key's 32-bit summary kept in the ghost set.
func (k Key) fingerprint() uint32 {
	h := objid.Mix64(k.File.Hi() ^ k.File.Lo()<<7 ^ uint64(k.Page))
	return uint32(h ^ h>>32)
}

const (
	qNone uint8 = iota
	qSmall
	qMain

	maxFreq = 3
	nilIdx  = int32(-1)

	// smallShare is the small FIFO's share of the budget, in percent.
	smallShare = 10
)

// entry is one live page. Links thread it into the small or main FIFO. It is
// 40 bytes: the page length, hit counter and queue share one word.
type entry struct {
	key        Key
	slot       uint32
	bits       uint32 // length | freq<<freqShift | queue<<queueShift
	crc        uint32
	prev, next int32
}

const (
	lengthMask = 1<<freqShift - 1
	freqShift  = 27 // lengths up to 64 MiB
	queueShift = 29
)

func (e *entry) length() uint32 { return e.bits & lengthMask }
func (e *entry) freq() uint8    { return uint8(e.bits >> freqShift & 3) }
func (e *entry) queue() uint8   { return uint8(e.bits >> queueShift & 3) }
func (e *entry) setFreq(f uint8) {
	e.bits = e.bits&^(3<<freqShift) | uint32(f)<<freqShift
}
func (e *entry) setQueue(q uint8) {
	e.bits = e.bits&^(3<<queueShift) | uint32(q)<<queueShift
}

// fifo is an intrusive doubly linked list of entries, oldest at head.
type fifo struct {
	head, tail int32
	bytes      int64
	count      int
}

// victim is a page removed from the index whose slot still has to be punched
// out and returned with releaseSlots.
type victim struct {
	slot  uint32
	bytes int64
}

// entriesPerBlock sizes the blocks entries are kept in: growing the index
// never copies or doubles a huge slice.
const entriesPerBlock = 1 << 16

// index is the in-memory state of the store: which page lives in which slot,
// the eviction queues and the byte accounting. It does no I/O; Store guards it
// with its mutex.
//
// Pages are found through an open-addressing hash table of entry numbers
// (linear probing, backward-shift deletion, load at most 3/4): 4 bytes a
// bucket instead of a Go map's copy of the key, which is what keeps the index
// under 100 bytes a page.
type index struct {
	blockSize int64
	budget    int64 // bytes of page data the store may hold on disk
	maxSlots  uint32

	table       []int32 // entry number + 1; 0 is an empty bucket
	count       int
	blocks      [][]entry
	nEntries    int32
	freeEntries []int32

	small, main fifo
	ghost       ghost

	// used is the disk bytes of live pages, reservations in flight and
	// victims not yet punched. It never exceeds budget.
	used      int64
	nextSlot  uint32
	freeSlots []uint32
}

func newIndex(budget, blockSize int64, maxSlots uint32) *index {
	return &index{
		blockSize: blockSize,
		budget:    budget,
		maxSlots:  maxSlots,
		table:     make([]int32, 64),
		small:     fifo{head: nilIdx, tail: nilIdx},
		main:      fifo{head: nilIdx, tail: nilIdx},
		ghost:     newGhost(1024),
	}
}

// diskBytes is the disk space a page of n bytes takes.
func (x *index) diskBytes(n uint32) int64 {
	return (int64(n) + x.blockSize - 1) / x.blockSize * x.blockSize
}

func (x *index) len() int { return x.count }

func (x *index) entry(i int32) *entry {
	return &x.blocks[i/entriesPerBlock][i%entriesPerBlock]
}

func hashKey(k Key) uint64 {
	return objid.Mix64(k.File.Hi() ^ objid.Mix64(k.File.Lo()^uint64(k.Page)))
}

// find returns the bucket holding k, or the empty bucket where it would go.
func (x *index) find(k Key) (bucket int, i int32, ok bool) {
	mask := len(x.table) - 1
	for b := int(hashKey(k)) & mask; ; b = (b + 1) & mask {
		v := x.table[b]
		if v == 0 {
			return b, nilIdx, false
		}
		if x.entry(v-1).key == k {
			return b, v - 1, true
		}
	}
}

func (x *index) grow() {
	old := x.table
	x.table = make([]int32, 2*len(old))
	mask := len(x.table) - 1
	for _, v := range old {
		if v == 0 {
			continue
		}
		b := int(hashKey(x.entry(v-1).key)) & mask
		for x.table[b] != 0 {
			b = (b + 1) & mask
		}
		x.table[b] = v
	}
}

// unhash empties bucket b and shifts later buckets of the probe run back, so
// lookups never need tombstones.
func (x *index) unhash(b int) {
	mask := len(x.table) - 1
	for {
		x.table[b] = 0
		next := b
		for {
			next = (next + 1) & mask
			v := x.table[next]
			if v == 0 {
				return
			}
			home := int(hashKey(x.entry(v-1).key)) & mask
			// Move v into the hole unless its home lies cyclically in (b, next].
			if (next > b && (home <= b || home > next)) || (next < b && home <= b && home > next) {
				x.table[b] = v
				b = next
				break
			}
		}
	}
}

// lookup returns the entry of k and counts a hit on it.
func (x *index) lookup(k Key) (entry, bool) {
	_, i, ok := x.find(k)
	if !ok {
		return entry{}, false
	}
	e := x.entry(i)
	if f := e.freq(); f < maxFreq {
		e.setFreq(f + 1)
	}
	return *e, true
}

// peek returns the entry of k without counting a hit.
func (x *index) peek(k Key) (entry, bool) {
	_, i, ok := x.find(k)
	if !ok {
		return entry{}, false
	}
	return *x.entry(i), true
}

// reserve hands out a slot and need bytes of budget, if both are available
// without eviction.
func (x *index) reserve(need int64) (uint32, bool) {
	if x.used+need > x.budget {
		return 0, false
	}
	var slot uint32
	switch {
	case len(x.freeSlots) > 0:
		slot = x.freeSlots[len(x.freeSlots)-1]
		x.freeSlots = x.freeSlots[:len(x.freeSlots)-1]
	case x.nextSlot < x.maxSlots:
		slot = x.nextSlot
		x.nextSlot++
	default:
		return 0, false
	}
	x.used += need
	return slot, true
}

// evictFor removes pages until need more bytes and a slot would be available
// once the returned victims are punched and released. Victims' bytes stay in
// used until releaseSlots, so the disk bound holds while they are punched.
func (x *index) evictFor(need int64, dst []victim) []victim {
	var freed int64
	slotFree := len(x.freeSlots) > 0 || x.nextSlot < x.maxSlots
	for x.used-freed+need > x.budget || !slotFree {
		v, ok := x.evictOne()
		if !ok {
			break
		}
		dst = append(dst, v)
		freed += v.bytes
		slotFree = true
	}
	return dst
}

// releaseSlots returns punched victims' (or abandoned reservations') slots
// and bytes.
func (x *index) releaseSlots(vs []victim) {
	for _, v := range vs {
		x.used -= v.bytes
		x.freeSlots = append(x.freeSlots, v.slot)
	}
}

// insert adds a page in a reserved slot. The caller has checked k is absent.
func (x *index) insert(k Key, slot, length, crc uint32) {
	var i int32
	if n := len(x.freeEntries); n > 0 {
		i = x.freeEntries[n-1]
		x.freeEntries = x.freeEntries[:n-1]
	} else {
		if int(x.nEntries)/entriesPerBlock == len(x.blocks) {
			x.blocks = append(x.blocks, make([]entry, entriesPerBlock))
		}
		i = x.nEntries
		x.nEntries++
	}
	*x.entry(i) = entry{key: k, slot: slot, bits: length, crc: crc, prev: nilIdx, next: nilIdx}
	if (x.count+1)*4 > len(x.table)*3 {
		x.grow()
	}
	b, _, _ := x.find(k)
	x.table[b] = i + 1
	x.count++
	if x.ghost.remove(k.fingerprint()) {
		x.push(&x.main, qMain, i)
	} else {
		x.push(&x.small, qSmall, i)
	}
}

// remove drops k from the index and returns its slot as a victim.
func (x *index) remove(k Key) (victim, bool) {
	_, i, ok := x.find(k)
	if !ok {
		return victim{}, false
	}
	switch x.entry(i).queue() {
	case qSmall:
		x.unlink(&x.small, i)
	case qMain:
		x.unlink(&x.main, i)
	}
	return x.forget(i), true
}

// evictOne picks the next page to leave, per S3-FIFO.
func (x *index) evictOne() (victim, bool) {
	for x.small.count+x.main.count > 0 {
		if x.small.count > 0 && (x.small.bytes*100 > x.budget*smallShare || x.main.count == 0) {
			i := x.pop(&x.small)
			e := x.entry(i)
			if e.freq() > 0 {
				e.setFreq(0)
				x.push(&x.main, qMain, i)
				continue
			}
			x.ghost.add(e.key.fingerprint(), x.count)
			return x.forget(i), true
		}
		i := x.pop(&x.main)
		e := x.entry(i)
		if f := e.freq(); f > 0 {
			e.setFreq(f - 1)
			x.push(&x.main, qMain, i)
			continue
		}
		return x.forget(i), true
	}
	return victim{}, false
}

// forget removes an unlinked entry from the table and frees it.
func (x *index) forget(i int32) victim {
	e := x.entry(i)
	v := victim{slot: e.slot, bytes: x.diskBytes(e.length())}
	b, _, _ := x.find(e.key)
	x.unhash(b)
	x.count--
	*e = entry{prev: nilIdx, next: nilIdx}
	x.freeEntries = append(x.freeEntries, i)
	return v
}

func (x *index) push(q *fifo, name uint8, i int32) {
	e := x.entry(i)
	e.setQueue(name)
	e.prev, e.next = q.tail, nilIdx
	if q.tail != nilIdx {
		x.entry(q.tail).next = i
	} else {
		q.head = i
	}
	q.tail = i
	q.count++
	q.bytes += x.diskBytes(e.length())
}

func (x *index) pop(q *fifo) int32 {
	i := q.head
	x.unlink(q, i)
	return i
}

func (x *index) unlink(q *fifo, i int32) {
	e := x.entry(i)
	if e.prev != nilIdx {
		x.entry(e.prev).next = e.next
	} else {
		q.head = e.next
	}
	if e.next != nilIdx {
		x.entry(e.next).prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.prev, e.next = nilIdx, nilIdx
	e.setQueue(qNone)
	q.count--
	q.bytes -= x.diskBytes(e.length())
}

// ghost remembers fingerprints of pages recently evicted from the small FIFO,
// about as many as the cache holds pages. It keeps two generations: when the
// current one is full it becomes the old one and the previous old one is
// dropped, so memory stays bounded without per-entry timestamps.
type ghost struct {
	cur, old map[uint32]struct{}
	min      int
}

func newGhost(min int) ghost {
	return ghost{cur: make(map[uint32]struct{}), old: make(map[uint32]struct{}), min: min}
}

// add remembers fp; limit is the number of fingerprints worth keeping.
func (g *ghost) add(fp uint32, limit int) {
	if limit < g.min {
		limit = g.min
	}
	if len(g.cur) >= limit/2 {
		g.old, g.cur = g.cur, make(map[uint32]struct{}, len(g.cur))
	}
	g.cur[fp] = struct{}{}
}

// remove reports whether fp was remembered, and forgets it.
func (g *ghost) remove(fp uint32) bool {
	if _, ok := g.cur[fp]; ok {
		delete(g.cur, fp)
		return true
	}
	if _, ok := g.old[fp]; ok {
		delete(g.old, fp)
		return true
	}
	return false
}
