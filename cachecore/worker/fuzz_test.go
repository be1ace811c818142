package worker

import (
	"net/url"
	"testing"

	"hoard.dev/hoard/cachecore/objid"
)

func mustSource(t testing.TB) objid.Source {
	s, err := objid.ParseSource("s3+https://h:1/b")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzParseRequest: any query either fails or gives a valid request that
// encodes back to itself; never a panic.
func FuzzParseRequest(f *testing.F) {
	f.Add("src=s3%2Bhttps%3A%2F%2Fh%3A1%2Fb&key=k&ver=v&size=10&off=0&len=10")
	f.Add("src=file%3A%2F%2F%2Fd&key=a%2Fb&ver=1-2-3&size=5497558138880&off=5497491030016&len=67108864")
	f.Add("src=s3%2Bhttp%3A%2F%2Fh%2Fb&key=k&ver=v&size=100&off=4611686018427387904&len=4611686018427387904")
	f.Add("size=-1&off=&len=x")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := ParseRequest(q)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRequest(%q) accepted an invalid request: %v", raw, err)
		}
		if r.Len > MaxRequestBytes || r.Off+r.Len > r.Size || r.Size > MaxObjectSize {
			t.Fatalf("ParseRequest(%q) = %+v: out of bounds", raw, r)
		}
		back, err := ParseRequest(r.Query())
		if err != nil || back != r {
			t.Fatalf("request %+v does not round-trip: %+v, %v", r, back, err)
		}
	})
}

// FuzzParseListRequest: any query either fails or gives a request that
// encodes back to itself.
func FuzzParseListRequest(f *testing.F) {
	f.Add("src=s3%2Bhttps%3A%2F%2Fh%3A1%2Fb&prefix=a%2F&delim=%2F&after=&max=1000&ttl=1m0s")
	f.Add("src=x&max=-5&ttl=-1h")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := ParseListRequest(q)
		if err != nil {
			return
		}
		if err := r.Source.Validate(); err != nil {
			t.Fatalf("ParseListRequest(%q) accepted source %v: %v", raw, r.Source, err)
		}
		back, err := ParseListRequest(r.Query())
		if err != nil || back != r {
			t.Fatalf("list request %+v does not round-trip: %+v, %v", r, back, err)
		}
	})
}
