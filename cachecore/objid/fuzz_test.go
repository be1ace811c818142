package objid

import "testing"

// FuzzParseSource: any input either fails or round-trips exactly.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"s3+https://h:1/b", "s3+http://127.0.0.1:9000/data", "file:///srv", "s3://b/p/", "file:///a/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseSource(name)
		if err != nil {
			return
		}
		if s.String() != name {
			t.Fatalf("ParseSource(%q) = %v, which prints differently", name, s)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSource(%q) accepted an invalid source: %v", name, err)
		}
	})
}
