package pagestore

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestRecordRelabelledIsNotServed: a record rewritten on disk to name
// another identity (valid record CRC, same data) is never served for it: the
// page CRC covers the key, so the page read back is checked to belong to the
// identity asked for.
func TestRecordRelabelledIsNotServed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20)
	a, b := key(1, 0), key(2, 0)
	if err := s.Put(a, pageData(1, 0, 5000)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, recName := s.slabs.names(0)
	buf, err := os.ReadFile(recName)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := decodeRecord(buf)
	if !ok || r.key != a {
		t.Fatalf("record 0 = %+v, %t; want page %v", r, ok, a)
	}
	r.key = b
	r.encode(buf)
	if err := os.WriteFile(recName, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, 64<<20)
	if s2.Contains(a) || !s2.Contains(b) {
		t.Fatal("the relabelled record did not load under the new key")
	}
	if n, ok := s2.Get(b, make([]byte, testPage)); ok {
		t.Fatalf("page of %v served as %v (%d bytes)", a, b, n)
	}
	if s2.Stats().Corrupt.Load() != 1 || s2.Contains(b) {
		t.Error("the relabelled page was not dropped as corrupt")
	}
}

func TestDrop(t *testing.T) {
	s := openStore(t, t.TempDir(), 64<<20)
	k := key(3, 1)
	s.Put(k, pageData(3, 1, 100))
	s.Drop(k)
	if s.Contains(k) {
		t.Fatal("dropped page still cached")
	}
	if used, pages := s.Usage(); used != 0 || pages != 0 {
		t.Errorf("after Drop: %d bytes, %d pages; want none", used, pages)
	}
	s.Drop(k) // absent: a no-op
}

// TestFormat1IsEmptied: a cache dir of the old, forgeable identity format is
// emptied on Open, not served.
func TestFormat1IsEmptied(t *testing.T) {
	dir := t.TempDir()
	m1, _ := json.Marshal(map[string]int{"format": 1, "page_size": testPage})
	os.WriteFile(filepath.Join(dir, "meta.json"), m1, 0o600)
	old := bytes.Repeat([]byte{7}, 64)
	os.WriteFile(filepath.Join(dir, "slab-00000.rec"), old, 0o600)
	os.WriteFile(filepath.Join(dir, "slab-00000.dat"), old, 0o600)
	os.WriteFile(filepath.Join(dir, "keep.txt"), old, 0o600)
	s := openStore(t, dir, 64<<20)
	if _, pages := s.Usage(); pages != 0 {
		t.Errorf("%d pages loaded from a format 1 dir", pages)
	}
	if fi, err := os.Stat(filepath.Join(dir, "slab-00000.rec")); err == nil && fi.Size() != 0 {
		t.Error("format 1 records were kept")
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.txt")); err != nil {
		t.Error("a file that is not a slab was removed")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "meta.json"))
	var m meta
	if json.Unmarshal(b, &m); m.Format != formatVersion {
		t.Errorf("meta.json says format %d after Open, want %d", m.Format, formatVersion)
	}
}

// FuzzDecodeRecord: a record from disk either decodes to what encodes back
// to the same bytes, or is refused; never a panic.
func FuzzDecodeRecord(f *testing.F) {
	var b [recordSize]byte
	record{key: key(1, 2), length: 4096, crc: 99}.encode(b[:])
	f.Add(b[:])
	f.Add(make([]byte, recordSize))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, ok := decodeRecord(in)
		if !ok {
			return
		}
		var out [recordSize]byte
		r.encode(out[:])
		if !bytes.Equal(out[:44], in[:44]) || !bytes.Equal(out[44:], in[44:recordSize]) {
			t.Fatalf("record %x decodes to %+v, which encodes to %x", in[:recordSize], r, out)
		}
	})
}
