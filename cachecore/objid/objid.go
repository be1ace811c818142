package objid

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// IDSize is the number of bytes of an ID: 128 bits of SHA-256.
const IDSize = 16

// ID identifies one version, of one size, of one object in one source.
type ID [IDSize]byte

// domain separates this encoding from any other use of SHA-256; bump the
// version if the encoding changes.
const domain = "hoard objid v2\x00"

// Of returns the ID of version (of size bytes) of key in src. The encoding
// is canonical: every field is length-prefixed, so no two different tuples
// encode the same.
func Of(src Source, key, version string, size int64) ID {
	h := sha256.New()
	var buf [256]byte
	b := append(buf[:0], domain...)
	for _, f := range [...]string{src.Scheme, src.Endpoint, src.Bucket, key, version} {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	h.Write(b)
	var sum [sha256.Size]byte
	var id ID
	copy(id[:], h.Sum(sum[:0]))
	return id
}

// Hi is the first half of the ID as an integer, for hash tables and routing.
func (id ID) Hi() uint64 { return binary.LittleEndian.Uint64(id[0:8]) }

// Lo is the second half of the ID; see Hi.
func (id ID) Lo() uint64 { return binary.LittleEndian.Uint64(id[8:16]) }

// String is the ID in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ChunkHash returns the 64-bit routing key of chunk index chunk of the object.
func (id ID) ChunkHash(chunk int64) uint64 {
	return Mix64(id.Hi() ^ Mix64(id.Lo()^uint64(chunk)))
}

// Mix64 is the 64-bit finalizer of MurmurHash3 (fmix64): a bijection that spreads
// every input bit over every output bit. It is for hash tables and routing,
// never for identity.
func Mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb93e53ca4e63
	x ^= x >> 33
	return x
}
