package objid

import "testing"

func TestSourceRoundTrip(t *testing.T) {
	for _, s := range []Source{
		S3("127.0.0.1:9000", false, "data"),
		S3("s3.amazonaws.com", true, "my.bucket-1"),
		S3("[::1]:9000", true, "b"),
		File("/srv/data"),
		File("/"),
	} {
		got, err := ParseSource(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSource(%q) = %+v, %v; want %+v", s.String(), got, err, s)
		}
	}
}

func TestParseSourceRejects(t *testing.T) {
	for _, name := range []string{
		"", "s3://host/bucket", "https://host/bucket", "s3+https://host", "s3+https://host/",
		"s3+https:///bucket", "s3+https://host/a/b", "s3+https://user@host/b", "s3+http://host/b?x",
		"file://relative", "file:///a/../b", "file:///a/", "file:///a\x00b", "s3+https://h/b\n",
	} {
		if s, err := ParseSource(name); err == nil {
			t.Errorf("ParseSource(%q) = %+v, want an error", name, s)
		}
	}
}

func TestSourceScheme(t *testing.T) {
	if s := S3("h:1", false, "b"); s.Secure() || s.EndpointURL() != "http://h:1" || s.String() != "s3+http://h:1/b" {
		t.Errorf("plain HTTP source: %v secure=%t url=%s", s, s.Secure(), s.EndpointURL())
	}
	if s := S3("h:1", true, "b"); !s.Secure() || s.EndpointURL() != "https://h:1" {
		t.Errorf("TLS source: %v secure=%t url=%s", s, s.Secure(), s.EndpointURL())
	}
}
