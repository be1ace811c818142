package objid

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// oldID is the identity before issue 11: two xxhash64 sums over one running
// state of the length-prefixed (source, key, version), 96 bits kept.
type oldID struct {
	Hi uint64
	Lo uint32
}

func oldOf(source, key, version string) oldID {
	d := xxhash.New()
	for _, f := range []string{source, key, version} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(f)))
		d.Write(n[:])
		d.WriteString(f)
	}
	hi := d.Sum64()
	d.Write([]byte{0xff})
	lo := d.Sum64()
	return oldID{Hi: hi, Lo: uint32(lo ^ lo>>32)}
}

// oldEncoding is the byte stream oldOf hashes.
func oldEncoding(source, key, version string) []byte {
	var b []byte
	for _, f := range []string{source, key, version} {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var (
	xxP1 uint64 = 11400714785074694791
	xxP2 uint64 = 14029467366897019727
)

// inverse returns the multiplicative inverse of odd x modulo 2^64 (Newton).
func inverse(x uint64) uint64 {
	inv := x
	for i := 0; i < 6; i++ {
		inv *= 2 - x*inv
	}
	return inv
}

// xxLanes runs xxhash64's four lanes (seed 0) over the whole 32-byte stripes of b.
func xxLanes(b []byte) [4]uint64 {
	v := [4]uint64{xxP1 + xxP2, xxP2, 0, -xxP1}
	for ; len(b) >= 32; b = b[32:] {
		for i := range v {
			v[i] = bits.RotateLeft64(v[i]+binary.LittleEndian.Uint64(b[8*i:])*xxP2, 31) * xxP1
		}
	}
	return v
}

// forgeKey finds the key that, in the attacker's source, has the victim's
// old identity: the same total length and, from a stripe boundary on, the
// same bytes, with the 32 bytes before that boundary chosen (by inverting
// xxhash's lane round, a bijection) so that all four lanes equal the
// victim's there. The version is the victim's: the attacker's endpoint
// answers any If-Match.
func forgeKey(t *testing.T, srcV, keyV, ver, srcA string) string {
	t.Helper()
	ev := oldEncoding(srcV, keyV, ver)
	startV := 8 + len(srcV) + 8
	startA := 8 + len(srcA) + 8
	keyALen := len(srcV) + len(keyV) - len(srcA)
	// The boundary o: a multiple of 32 with the controlled block inside the
	// attacker's key and the shared tail inside the victim's key.
	o := (startV + len(keyV)) / 32 * 32
	if o < startV || o-32 < startA || keyALen < 0 {
		t.Fatalf("no stripe boundary fits: victim key %d bytes at %d, attacker key at %d", len(keyV), startV, startA)
	}
	want := xxLanes(ev[:o])
	head := append(oldEncoding(srcA, "", "")[:8+len(srcA)], binary.LittleEndian.AppendUint64(nil, uint64(keyALen))...)
	filler := bytes.Repeat([]byte{'a'}, o-32-startA)
	have := xxLanes(append(append([]byte(nil), head...), filler...))
	p1inv, p2inv := inverse(xxP1), inverse(xxP2)
	block := make([]byte, 32)
	for i := range want {
		x := bits.RotateLeft64(want[i]*p1inv, -31)
		binary.LittleEndian.PutUint64(block[8*i:], (x-have[i])*p2inv)
	}
	key := string(filler) + string(block) + keyV[o-startV:]
	if len(key) != keyALen {
		t.Fatalf("forged key has %d bytes, want %d", len(key), keyALen)
	}
	return key
}

// TestCollisionAttack rebuilds finding 1 of issue 11: against the old 96-bit
// xxhash identity, an object on the attacker's endpoint is forged with the
// identity of a victim's model shard. The new identity (SHA-256 over the
// canonical encoding) tells them apart.
func TestCollisionAttack(t *testing.T) {
	srcV, keyV, ver := "s3://minio.team-a:9000/models", "llama-3-8b/model-00001-of-00004.safetensors", "9b2cf535f27731c974343645a3985328"
	srcA := "s3://e.vil:1/x"
	keyA := forgeKey(t, srcV, keyV, ver, srcA)
	if keyA == keyV {
		t.Fatal("forged key equals the victim's")
	}
	// The attack works against the old scheme...
	if a, v := oldOf(srcA, keyA, ver), oldOf(srcV, keyV, ver); a != v {
		t.Fatalf("collision finder is wrong: old IDs %x and %x differ", a, v)
	}
	// ...and fails against the new one, for the same tuples.
	victim := Of(S3("minio.team-a:9000", false, "models"), keyV, ver, 1<<30)
	attacker := Of(S3("e.vil:1", false, "x"), keyA, ver, 1<<30)
	if victim == attacker {
		t.Fatal("the forged key has the victim's identity")
	}
}

func TestOfCoversEveryField(t *testing.T) {
	base := Of(S3("h:1", true, "b"), "k", "v", 10)
	for name, id := range map[string]ID{
		"scheme":   Of(S3("h:1", false, "b"), "k", "v", 10),
		"endpoint": Of(S3("h:2", true, "b"), "k", "v", 10),
		"bucket":   Of(S3("h:1", true, "c"), "k", "v", 10),
		"key":      Of(S3("h:1", true, "b"), "K", "v", 10),
		"version":  Of(S3("h:1", true, "b"), "k", "V", 10),
		"size":     Of(S3("h:1", true, "b"), "k", "v", 11),
		// Field boundaries: moving a byte from one field to the next.
		"boundary": Of(S3("h:1", true, "b"), "kv", "", 10),
	} {
		if id == base {
			t.Errorf("changing the %s keeps the ID", name)
		}
	}
	if Of(S3("h:1", true, "b"), "k", "v", 10) != base {
		t.Error("ID is not deterministic")
	}
}
