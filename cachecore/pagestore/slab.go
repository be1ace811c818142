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

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/cachecore/objid"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

const (
	recordSize  = 32
	recordMagic = uint32(0x31445248) // "HRD1"
)

// record is the on-disk description of one slot's page.
type record struct {
	key    Key
	length uint32
	crc    uint32
}

func (r record) encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], r.key.File.Hi)
	binary.LittleEndian.PutUint32(b[8:], r.key.File.Lo)
	binary.LittleEndian.PutUint32(b[12:], r.key.Page)
	binary.LittleEndian.PutUint32(b[16:], r.length)
	binary.LittleEndian.PutUint32(b[20:], r.crc)
	binary.LittleEndian.PutUint32(b[24:], recordMagic)
	binary.LittleEndian.PutUint32(b[28:], checksum(b[:28]))
}

// decodeRecord returns the record in b, or false for an empty or torn one.
func decodeRecord(b []byte) (record, bool) {
	if binary.LittleEndian.Uint32(b[24:]) != recordMagic ||
		binary.LittleEndian.Uint32(b[28:]) != checksum(b[:28]) {
		return record{}, false
	}
	return record{
		key: Key{
			File: objid.ID{Hi: binary.LittleEndian.Uint64(b[0:]), Lo: binary.LittleEndian.Uint32(b[8:])},
			Page: binary.LittleEndian.Uint32(b[12:]),
		},
		length: binary.LittleEndian.Uint32(b[16:]),
		crc:    binary.LittleEndian.Uint32(b[20:]),
	}, true
}

// slabs owns the page and record files of a store directory.
type slabs struct {
	dir          string
	pageSize     int64
	slotsPerFile uint32
	sparse       bool // the filesystem punches holes

	mu    sync.RWMutex
	files []*slabFile // by file number; nil until first used
}

type slabFile struct {
	dat, rec *os.File
}

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
	s.files[n] = &slabFile{dat: dat, rec: rec}
	return s.files[n], nil
}

func (s *slabs) locate(slot uint32) (file uint32, dataOff, recOff int64) {
	file = slot / s.slotsPerFile
	i := int64(slot % s.slotsPerFile)
	return file, i * s.pageSize, i * recordSize
}

// read reads the page in slot into buf (exactly len(buf) bytes).
func (s *slabs) read(slot uint32, buf []byte) error {
	n, off, _ := s.locate(slot)
	f, err := s.file(n)
	if err != nil {
		return err
	}
	if _, err := f.dat.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return errShortPage
		}
		return fmt.Errorf("read slot %d: %w", slot, err)
	}
	return nil
}

var errShortPage = errors.New("page file shorter than its record")

// write stores data in slot, then its record. The order matters: a record
// never describes data that was not written before it (invariant 3).
func (s *slabs) write(slot uint32, data []byte, r record) error {
	n, off, roff := s.locate(slot)
	f, err := s.file(n)
	if err != nil {
		return err
	}
	if _, err := f.dat.WriteAt(data, off); err != nil {
		return fmt.Errorf("write slot %d: %w", slot, err)
	}
	var b [recordSize]byte
	r.encode(b[:])
	if _, err := f.rec.WriteAt(b[:], roff); err != nil {
		return fmt.Errorf("write record of slot %d: %w", slot, err)
	}
	return nil
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
	}
	s.files = nil
	return errors.Join(errs...)
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
