package volume

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func testKeys(t testing.TB, lines string) *IDKeys {
	t.Helper()
	k, err := ParseIDKeys([]byte(lines))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	keyA = "0123456789abcdef0123456789abcdef-key-a"
	keyB = "fedcba9876543210fedcba9876543210-key-b"
)

func TestParseIDKeys(t *testing.T) {
	for _, bad := range []string{"", "\n# only a comment\n", "short-key", keyA + "\nshort"} {
		if _, err := ParseIDKeys([]byte(bad)); err == nil {
			t.Errorf("ParseIDKeys(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), keyA) {
			t.Errorf("ParseIDKeys error shows a key: %v", err)
		}
	}
	k := testKeys(t, "# rotated 2026-12\n  "+keyB+"  \n\n"+keyA+"\n")
	if len(k.keys) != 2 || string(k.keys[0]) != keyB {
		t.Fatalf("keys %q", k.keys)
	}
}

func deleteIDOf(v ID) ID {
	v.Provisioning, v.DeleteData = ProvisionPrefix, true
	return v
}

// TestForgedIDDeletesNothing: an ID whose MAC was not made with the
// controller's key (hand-written, altered to name another prefix, or made by
// another installation) does not parse, so DeleteVolume deletes nothing.
func TestForgedIDDeletesNothing(t *testing.T) {
	a, b := testKeys(t, keyA), testKeys(t, keyB)
	victim := deleteIDOf(ID{Endpoint: "minio:9000", Bucket: "data", Prefix: "team-b/models/"})
	mine := deleteIDOf(ID{Endpoint: "minio:9000", Bucket: "data", Prefix: "team-a/vol-1/"})
	id, ok := a.DeleteID(mine)
	if !ok {
		t.Fatal("ID does not fit")
	}
	if got, err := ParseID(id, a); err != nil || got != mine {
		t.Fatalf("ParseID of a genuine ID = %+v, %v", got, err)
	}
	// Altered to name the victim's prefix, keeping the MAC.
	altered := strings.Replace(id, "team-a/vol-1", "team-b/models", 1)
	// Signed with another key (another controller, or an attacker's).
	other, _ := b.DeleteID(victim)
	// The old unkeyed form, which anyone can compute.
	legacy := "h1/pd/" + legacyCheck("pd", "minio:9000//data/team-b/models") + "/minio:9000//data/team-b/models"
	for name, forged := range map[string]string{"altered": altered, "other key": other} {
		if v, err := ParseID(forged, a); !errors.Is(err, ErrNotHoardID) {
			t.Errorf("%s: ParseID(%q) = %+v, %v; want ErrNotHoardID", name, forged, v, err)
		}
	}
	if v, err := ParseID(legacy, a); err != nil || !v.Unverified || v.Prefix != victim.Prefix {
		t.Errorf("legacy unkeyed ID: %+v, %v; want parsed and Unverified", v, err)
	}
	if _, err := ParseID(id, nil); !errors.Is(err, ErrNoIDKey) {
		t.Errorf("keyed ID without keys: %v, want ErrNoIDKey", err)
	}
	// Rotation: a controller holding the new key first and the old one
	// after still accepts IDs signed with the old one, and signs with the new.
	rotated := testKeys(t, keyB+"\n"+keyA)
	if got, err := ParseID(id, rotated); err != nil || got != mine {
		t.Errorf("old ID after rotation: %+v, %v", got, err)
	}
	if newID, _ := rotated.DeleteID(mine); newID == id {
		t.Error("rotated keys still sign with the old key")
	}
}

func TestParseIDRejects(t *testing.T) {
	k := testKeys(t, keyA)
	id, _ := k.DeleteID(deleteIDOf(ID{Bucket: "data", Prefix: "team/vol-a/"}))
	if !strings.HasPrefix(id, "h2/pd/") || !strings.HasSuffix(id, "///data/team/vol-a") || len(id) != len("h2/pd/")+macLen+len("///data/team/vol-a") {
		t.Fatalf("unexpected ID %q", id)
	}
	withMAC := func(flags, body string) string {
		return "h2/" + flags + "/" + base64.RawURLEncoding.EncodeToString(k.mac(k.keys[0], flags, body)) + "/" + body
	}
	for _, bad := range []string{
		"",
		"pvc-123",
		"h1",
		"h1/pr",
		"h1/pr/",
		"h1/pr/0123",
		"h1/pr/0123456789ABCDEF0123456789ABCDEF",
		"h1/pr/0123456789abcdef0123456789abcdeg",
		"h2/pr/0123456789abcdef0123456789abcdef",
		"h3/pd/xxxxxxxxxxxxxxxx///data/a",
		"h1/xx/0123456789abcdef0123456789abcdef",
		strings.Replace(id, "vol-a", "vol-b", 1), // altered: MAC fails
		strings.Replace(id, "h2/pd/", "h2/pdi/", 1),
		id + "/",
		withMAC("pd", "//data/"),         // no prefix: would be the whole bucket
		withMAC("pd", "//data/a//b"),     // not a prefix
		withMAC("pd", "//data/../b"),     // not a prefix
		withMAC("pd", "//Bad_Bucket!/a"), // not a bucket
		withMAC("pd", "h:0//data/a"),     // not an endpoint
		withMAC("pd", "/re gion/data/a"), // not a region
		withMAC("pd", "//data"),          // too few fields
		withMAC("pdis", "//data/a"),      // flags out of order
		withMAC("pd", strings.Repeat("a", 200)),
	} {
		if v, err := ParseID(bad, k); err == nil {
			t.Errorf("ParseID(%q) = %+v, want rejected", bad, v)
		}
	}
	// The MAC is all that guards an ID; a correct one is taken.
	if v, err := ParseID(withMAC("pd", "//data/a/b"), k); err != nil || v.Prefix != "a/b/" {
		t.Errorf("ParseID of an ID with a valid MAC = %+v, %v", v, err)
	}
}

// FuzzParseID: no input makes ParseID panic, and every ID it accepts names
// a real prefix (never the whole bucket, no "." or ".." segment) and is
// exactly the ID the controller would make for what it says.
func FuzzParseID(f *testing.F) {
	k := testKeys(f, keyA)
	for _, v := range []ID{
		{Bucket: "data", Prefix: "vol/"},
		{Endpoint: "minio.minio.svc:9000", Region: "eu-1", PathStyle: true, Insecure: true, Bucket: "data", Prefix: "a/b/vol/"},
		{Endpoint: "[::1]:9000", Insecure: true, Bucket: "data", Prefix: "x/"},
	} {
		id, _ := k.DeleteID(deleteIDOf(v))
		f.Add(id)
	}
	f.Add("h1/pr/0123456789abcdef0123456789abcdef")
	f.Add("h1/br/0123456789abcdef0123456789abcdef")
	f.Add("h1/pd/" + legacyCheck("pd", "//data/a") + "//data/a")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseID(s, k)
		if err != nil {
			return
		}
		if !v.DeleteData {
			if len(s) != len("h1/pr/")+DigestLen {
				t.Fatalf("digest ID %q accepted with the wrong length", s)
			}
			return
		}
		if v.Prefix == "" || !strings.HasSuffix(v.Prefix, "/") {
			t.Fatalf("ParseID(%q) names prefix %q", s, v.Prefix)
		}
		for seg := range strings.SplitSeq(strings.TrimSuffix(v.Prefix, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("ParseID(%q) names prefix %q", s, v.Prefix)
			}
		}
		if v.Unverified {
			return
		}
		again, _ := k.DeleteID(v)
		if again != s {
			t.Fatalf("ParseID(%q) = %+v, which the controller writes as %q", s, v, again)
		}
	})
}
