package ufs

import (
	"sort"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

// FuzzListingNames: whatever names a store's listing holds (any bytes,
// any order, duplicates), a page keeps only names after StartAfter, in
// order, at most MaxKeys of them, and Next is the last one when more follow.
func FuzzListingNames(f *testing.F) {
	f.Add("a\nb/\nc", "b/\nd/", "", 2, true)
	f.Add("x/../y\n\x00\n\xff\xfe", "", "x", 1000, false)
	f.Add("", "", "", 0, true)
	f.Fuzz(func(t *testing.T, keys, prefixes, startAfter string, maxKeys int, truncated bool) {
		if maxKeys <= 0 || maxKeys > 1000 {
			maxKeys = 1000
		}
		var res minio.ListBucketV2Result
		ks, ps := strings.Split(keys, "\n"), strings.Split(prefixes, "\n")
		sort.Strings(ks) // a store sends each list sorted
		sort.Strings(ps)
		for _, k := range ks {
			if k != "" {
				res.Contents = append(res.Contents, minio.ObjectInfo{Key: k, ETag: `"e"`})
			}
		}
		for _, p := range ps {
			if p != "" {
				res.CommonPrefixes = append(res.CommonPrefixes, minio.CommonPrefix{Prefix: p})
			}
		}
		res.IsTruncated = truncated
		page, err := s3Page(res, startAfter, maxKeys, "fuzz")
		if err != nil {
			return
		}
		var names []string
		for _, o := range page.Objects {
			names = append(names, o.Key)
		}
		names = append(names, page.Prefixes...)
		if len(names) > maxKeys {
			t.Fatalf("%d names in a page of at most %d", len(names), maxKeys)
		}
		for _, n := range names {
			if n <= startAfter {
				t.Fatalf("name %q is not after %q", n, startAfter)
			}
		}
		if page.Next != "" {
			for _, n := range names {
				if n > page.Next {
					t.Fatalf("name %q after Next %q", n, page.Next)
				}
			}
		}
	})
}
