package objid

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// ID identifies one version of one object in one source (bucket).
type ID struct {
	Hi uint64
	Lo uint32
}

// Of returns the ID of version of key in source. source names the bucket
// unambiguously (for example "s3://endpoint/bucket" or "file:///data").
func Of(source, key, version string) ID {
	d := xxhash.New()
	writeField(d, source)
	writeField(d, key)
	writeField(d, version)
	hi := d.Sum64()
	// A second, independent hash of the same fields widens the identity to 96 bits.
	_, _ = d.Write([]byte{0xff})
	lo := d.Sum64()
	return ID{Hi: hi, Lo: uint32(lo ^ lo>>32)}
}

// writeField writes a length-prefixed field so that ("ab","c") and ("a","bc") differ.
func writeField(d *xxhash.Digest, s string) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	_, _ = d.Write(n[:])
	_, _ = d.WriteString(s)
}

// ChunkHash returns the 64-bit routing key of chunk index chunk of the object.
func (id ID) ChunkHash(chunk int64) uint64 {
	return Mix64(id.Hi ^ Mix64(uint64(id.Lo)<<32^uint64(chunk)))
}

// Mix64 is the 64-bit finalizer of MurmurHash3 (fmix64): a bijection that spreads
// every input bit over every output bit.
func Mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb93e53ca4e63
	x ^= x >> 33
	return x
}
