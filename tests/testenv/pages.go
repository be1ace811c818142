package testenv

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// PageDamage is how DamagePages damages a cached page on disk.
type PageDamage int

const (
	// FlipBit flips one bit of the page's bytes, as bit rot does.
	FlipBit PageDamage = iota
	// TearPage zeroes the second half of the page, as a write that did not
	// finish leaves it.
	TearPage
	// TearRecord zeroes the second half of the page's slot record.
	TearRecord
)

// The page store's layout on disk (cachecore/pagestore): slab-NNNNN.dat
// holds page slots of page_size bytes (meta.json), slab-NNNNN.rec one
// 48-byte record per slot, bytes 20:24 the page's length and 28:32 a
// magic number when the record is in use.
const (
	recordBytes = 48
	recordMagic = 0x32445248
)

// DamagePages damages every every-th page held in the page store directory
// dir (a worker's cache dir + "/pages"), the way how says, through the
// files (while the store runs or not), and returns how many it damaged.
func DamagePages(dir string, how PageDamage, every int) (int, error) {
	var meta struct {
		PageSize int64 `json:"page_size"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, &meta); err != nil || meta.PageSize <= 0 {
		return 0, fmt.Errorf("%s/meta.json: page size: %v", dir, err)
	}
	recs, err := filepath.Glob(filepath.Join(dir, "slab-*.rec"))
	if err != nil {
		return 0, err
	}
	sort.Strings(recs)
	damaged, seen := 0, 0
	for _, rec := range recs {
		n, err := damageSlab(rec, rec[:len(rec)-len(".rec")]+".dat", meta.PageSize, how, every, &seen)
		damaged += n
		if err != nil {
			return damaged, err
		}
	}
	return damaged, nil
}

func damageSlab(recName, datName string, pageSize int64, how PageDamage, every int, seen *int) (int, error) {
	records, err := os.ReadFile(recName)
	if err != nil {
		return 0, err
	}
	rf, err := os.OpenFile(recName, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer rf.Close()
	df, err := os.OpenFile(datName, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer df.Close()
	damaged := 0
	for slot := int64(0); (slot+1)*recordBytes <= int64(len(records)); slot++ {
		r := records[slot*recordBytes : (slot+1)*recordBytes]
		if binary.LittleEndian.Uint32(r[28:]) != recordMagic {
			continue
		}
		*seen++
		if every > 1 && (*seen-1)%every != 0 {
			continue
		}
		length := int64(binary.LittleEndian.Uint32(r[20:]))
		if length <= 0 || length > pageSize {
			continue
		}
		off := slot * pageSize
		switch how {
		case FlipBit:
			at := off + length/2
			var bb [1]byte
			if _, err := df.ReadAt(bb[:], at); err != nil {
				return damaged, err
			}
			bb[0] ^= 0x04
			_, err = df.WriteAt(bb[:], at)
		case TearPage:
			_, err = df.WriteAt(make([]byte, length-length/2), off+length/2)
		case TearRecord:
			_, err = rf.WriteAt(make([]byte, recordBytes/2), slot*recordBytes+recordBytes/2)
		}
		if err != nil {
			return damaged, err
		}
		damaged++
	}
	return damaged, nil
}
