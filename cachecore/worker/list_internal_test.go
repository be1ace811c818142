package worker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/ufs"
)

// TestListCacheBoundedInBytes (issue 11, finding 7): pages of long names
// are bounded by bytes, not only by their number.
func TestListCacheBoundedInBytes(t *testing.T) {
	const limit = 1 << 20
	c := newListCache(10000, limit)
	long := strings.Repeat("k", 1000)
	for i := 0; i < 100; i++ {
		var p ufs.ListPage
		for j := 0; j < 100; j++ {
			p.Objects = append(p.Objects, ufs.Object{Key: fmt.Sprintf("%s-%d-%d", long, i, j), Version: "v"})
		}
		c.put(fmt.Sprint(i), p, time.Now())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.bytes > limit {
		t.Errorf("listing cache holds %d bytes, bound %d", c.mu.bytes, limit)
	}
	if c.mu.lru.Len() == 0 || c.mu.lru.Len() >= 100 {
		t.Errorf("%d pages kept of 100 of ~110 KB each in 1 MiB", c.mu.lru.Len())
	}
}
