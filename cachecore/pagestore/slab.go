package pagestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/cachecore/objid"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

const (
	recordSize  = 48
	recordMagic = uint32(0x32445248) // "HRD2"
)

// keySize is the bytes of a Key in a record and in a page checksum.
const keySize = objid.IDSize + 4

// record is the on-disk description of one slot's page: the page's full
// identity (the 128-bit object ID and the page number), its length and the
// CRC-32C of key and data together (pageChecksum), so that a page read back
// is checked to be the page of the identity asked for, not only intact.
//
//	0:16 object ID   16:20 page   20:24 length   24:28 page CRC
//	28:32 magic      32:44 zero   44:48 CRC-32C of bytes 0:44
type record struct {
	key    Key
	length uint32
	crc    uint32
}

func (k Key) encode(b []byte) {
	copy(b[:objid.IDSize], k.File[:])
	binary.LittleEndian.PutUint32(b[objid.IDSize:], k.Page)
}

// Checksum is the checksum of page k holding data: the CRC-32C of k's
// encoding followed by data. It travels with the page from the bucket to
// the reader (store records, worker responses), so that a page is checked
// to be intact and to be the page of the identity asked for.
func Checksum(k Key, data []byte) uint32 { return pageChecksum(k, data) }

// pageChecksum is the CRC-32C of k's encoding followed by data.
func pageChecksum(k Key, data []byte) uint32 {
	var kb [keySize]byte
	k.encode(kb[:])
	return crc32.Update(checksum(kb[:]), castagnoli, data)
}

func (r record) encode(b []byte) {
	clear(b[:recordSize])
	r.key.encode(b[0:])
	binary.LittleEndian.PutUint32(b[20:], r.length)
	binary.LittleEndian.PutUint32(b[24:], r.crc)
	binary.LittleEndian.PutUint32(b[28:], recordMagic)
	binary.LittleEndian.PutUint32(b[44:], checksum(b[:44]))
}

// decodeRecord returns the record in b (recordSize bytes), or false for an
// empty, torn or malformed one.
func decodeRecord(b []byte) (record, bool) {
	if len(b) < recordSize || binary.LittleEndian.Uint32(b[28:]) != recordMagic ||
		binary.LittleEndian.Uint32(b[44:]) != checksum(b[:44]) {
		return record{}, false
	}
	var r record
	copy(r.key.File[:], b[:objid.IDSize])
	r.key.Page = binary.LittleEndian.Uint32(b[16:])
	r.length = binary.LittleEndian.Uint32(b[20:])
	r.crc = binary.LittleEndian.Uint32(b[24:])
	return r, true
}

// dioAlign is the alignment of O_DIRECT offsets, lengths and buffers.
const dioAlign = 4096

// slabs owns the page and record files of a store directory.
//
// Pages are written with O_DIRECT where the filesystem allows it: a cache
// fill then costs no kernel page cache, whose fresh pages are expensive to
// fault in on a VM (measured: cold fills 1.7x faster), and it does not push
// hot data out of the page cache. Direct I/O needs aligned buffers, offsets
// and lengths: pages are written padded to dioAlign. Full pages are read
// buffered unless directFull, short ones direct (see read).
type slabs struct {
	dir          string
	pageSize     int64
	slotsPerFile uint32
	sparse       bool // the filesystem punches holes
	direct       bool // the filesystem takes O_DIRECT
	directFull   bool // full pages are read direct too (Config.DirectReads)

	bufs sync.Pool // aligned page buffers for direct writes and reads

	mu    sync.RWMutex
	files []*slabFile // by file number; nil until first used
}

type slabFile struct {
	dat, rec *os.File
	dio      *os.File // O_DIRECT descriptor of dat, or nil
}

// alignedBuffer returns a buffer of n bytes whose start is dioAlign-aligned.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+dioAlign)
	off := dioAlign - int(uintptr(unsafe.Pointer(&b[0]))&(dioAlign-1))
	return b[off : off+n : off+n]
}

func isAligned(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))&(dioAlign-1) == 0
}

func roundUp(n int) int { return (n + dioAlign - 1) &^ (dioAlign - 1) }

func (s *slabs) names(n uint32) (dat, rec string) {
	base := filepath.Join(s.dir, fmt.Sprintf("slab-%05d", n))
	return base + ".dat", base + ".rec"
}

// file returns slab file n, opening or creating it.
func (s *slabs) file(n uint32) (*slabFile, error) {
	s.mu.RLock()
	if int(n) < len(s.files) && s.files[n] != nil {
		f := s.files[n]
		s.mu.RUnlock()
		return f, nil
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	for int(n) >= len(s.files) {
		s.files = append(s.files, nil)
	}
	if s.files[n] != nil {
		return s.files[n], nil
	}
	datName, recName := s.names(n)
	dat, err := os.OpenFile(datName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open page file: %w", err)
	}
	rec, err := os.OpenFile(recName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		dat.Close()
		return nil, fmt.Errorf("open record file: %w", err)
	}
	f := &slabFile{dat: dat, rec: rec}
	if s.direct {
		if f.dio, err = os.OpenFile(datName, os.O_RDWR|syscall.O_DIRECT, 0); err != nil {
			dat.Close()
			rec.Close()
			return nil, fmt.Errorf("open page file for direct I/O: %w", err)
		}
	}
	s.files[n] = f
	return f, nil
}

func (s *slabs) locate(slot uint32) (file uint32, dataOff, recOff int64) {
	file = slot / s.slotsPerFile
	i := int64(slot % s.slotsPerFile)
	return file, i * s.pageSize, i * recordSize
}

// read reads the page in slot into buf (exactly len(buf) bytes; it may write
// up to cap(buf), which the caller owns for the call). A short page (a
// small object, or the tail of a large one) is read with O_DIRECT where the
// filesystem takes it: readahead has nothing to join it to, and a buffered
// read would keep a second copy of it in the page cache beside the reader's
// own (each fresh page costly on a VM: see the write path). Full pages are
// read buffered, so that the page cache serves pages several clients read
// and WillNeed can read ahead, unless directFull: then they are read direct
// too (measured with `hoard mount`, warm, page cache dropped, in
// `make bench`'s harness: 1.17-1.73x the throughput for less of the mount's
// CPU; see docs/benchmarks.md, "Changes of 2026-12-04").
func (s *slabs) read(slot uint32, buf []byte) error {
	n, off, _ := s.locate(slot)
	f, err := s.file(n)
	if err != nil {
		return err
	}
	if f.dio != nil && !s.buffered(int64(len(buf))) {
		err = s.readDirect(f.dio, buf, off)
	} else {
		_, err = f.dat.ReadAt(buf, off)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errShortPage
		}
		return fmt.Errorf("read slot %d: %w", slot, err)
	}
	return nil
}

// buffered reports whether a page of n bytes is read through the page cache.
func (s *slabs) buffered(n int64) bool { return !s.direct || !s.directFull && n >= s.pageSize }

// readDirect reads len(buf) bytes at off through dio: into buf itself when
// it is aligned and its capacity holds the whole dioAlign blocks (the
// store's buffers: NewBuffer, NewBufferOf), else by way of an aligned
// buffer and a copy.
func (s *slabs) readDirect(dio *os.File, buf []byte, off int64) error {
	want := len(buf)
	dst := buf[:cap(buf)]
	if !isAligned(buf) || cap(buf) < roundUp(want) {
		bp, _ := s.bufs.Get().(*[]byte)
		if bp == nil {
			b := alignedBuffer(int(s.pageSize))
			bp = &b
		}
		defer s.bufs.Put(bp)
		dst = *bp
	}
	n, err := dio.ReadAt(dst[:roundUp(want)], off)
	if n >= want {
		err = nil // the padding past the page's end may lie past the file's
	}
	if want > 0 && &dst[0] != &buf[0] {
		copy(buf, dst[:min(n, want)])
	}
	return err
}

var errShortPage = errors.New("page file shorter than its record")

// willNeed starts reading slot's data into the page cache (a hint: errors
// are ignored).
func (s *slabs) willNeed(slot uint32) {
	n, off, _ := s.locate(slot)
	f, err := s.file(n)
	if err != nil {
		return
	}
	_ = unix.Fadvise(int(f.dat.Fd()), off, s.pageSize, unix.FADV_WILLNEED)
}

// write stores data in slot, then its record. The order matters: a record
// never describes data that was not written before it (invariant 3).
func (s *slabs) write(slot uint32, data []byte, r record) error {
	n, off, roff := s.locate(slot)
	f, err := s.file(n)
	if err != nil {
		return err
	}
	if f.dio != nil {
		err = s.writeDirect(f.dio, data, off)
	} else {
		_, err = f.dat.WriteAt(data, off)
	}
	if err != nil {
		return fmt.Errorf("write slot %d: %w", slot, err)
	}
	var b [recordSize]byte
	r.encode(b[:])
	if _, err := f.rec.WriteAt(b[:], roff); err != nil {
		return fmt.Errorf("write record of slot %d: %w", slot, err)
	}
	return nil
}

// writeDirect writes data at off through an aligned copy padded with zeros
// to dioAlign; the padding is within the slot and counted in its disk bytes.
func (s *slabs) writeDirect(dio *os.File, data []byte, off int64) error {
	if isAligned(data) && len(data)%dioAlign == 0 {
		_, err := dio.WriteAt(data, off) // a full page from NewBuffer: no copy
		return err
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		b := alignedBuffer(int(s.pageSize))
		bp = &b
	}
	defer s.bufs.Put(bp)
	n := roundUp(len(data))
	buf := (*bp)[:n]
	copy(buf, data)
	clear(buf[len(data):])
	_, err := dio.WriteAt(buf, off)
	return err
}

// free zeroes the record of slot, then punches its data out.
func (s *slabs) free(slot uint32) error {
	n, off, roff := s.locate(slot)
	f, err := s.file(n)
	if err != nil {
		return err
	}
	var zero [recordSize]byte
	if _, err := f.rec.WriteAt(zero[:], roff); err != nil {
		return fmt.Errorf("clear record of slot %d: %w", slot, err)
	}
	if !s.sparse {
		return nil
	}
	if err := unix.Fallocate(int(f.dat.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, s.pageSize); err != nil {
		return fmt.Errorf("punch slot %d: %w", slot, err)
	}
	return nil
}

// scan calls fn for every valid record in every slab, in slot order, and
// returns one past the highest slot that has a record file entry.
func (s *slabs) scan(fn func(slot uint32, r record)) (uint32, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("read cache dir: %w", err)
	}
	var nums []uint32
	for _, e := range ents {
		var n uint32
		name := e.Name()
		if !strings.HasSuffix(name, ".rec") {
			continue
		}
		if _, err := fmt.Sscanf(name, "slab-%05d.rec", &n); err == nil {
			nums = append(nums, n)
		}
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	var next uint32
	for _, n := range nums {
		f, err := s.file(n)
		if err != nil {
			return 0, err
		}
		buf, err := io.ReadAll(io.NewSectionReader(f.rec, 0, 1<<62))
		if err != nil {
			return 0, fmt.Errorf("read records of slab %d: %w", n, err)
		}
		count := uint32(len(buf) / recordSize)
		for i := uint32(0); i < count && i < s.slotsPerFile; i++ {
			if r, ok := decodeRecord(buf[i*recordSize:]); ok {
				fn(n*s.slotsPerFile+i, r)
			}
		}
		if end := n*s.slotsPerFile + min(count, s.slotsPerFile); end > next {
			next = end
		}
	}
	return next, nil
}

func (s *slabs) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, f := range s.files {
		if f == nil {
			continue
		}
		errs = append(errs, f.dat.Close(), f.rec.Close())
		if f.dio != nil {
			errs = append(errs, f.dio.Close())
		}
	}
	s.files = nil
	return errors.Join(errs...)
}

// probeDirect reports whether dir's filesystem takes O_DIRECT (tmpfs does not).
func probeDirect(dir string) bool {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	defer f.Close()
	d, err := os.OpenFile(f.Name(), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		return false
	}
	defer d.Close()
	_, err = d.WriteAt(alignedBuffer(dioAlign), 0)
	return err == nil
}

// probeSparse reports whether dir's filesystem can punch holes.
func probeSparse(dir string) (bool, error) {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false, fmt.Errorf("probe cache dir: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 8192), 0); err != nil {
		return false, fmt.Errorf("probe cache dir: %w", err)
	}
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
	return err == nil, nil
}
