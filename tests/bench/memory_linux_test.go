package bench

import (
	"syscall"
	"time"
)

// freshMemoryCost is the seconds it takes to fault in 1 GiB of anonymous
// memory right after the page cache was dropped: what every fresh page
// costs the systems measured after a drop. On a VM whose balloon reports
// free pages to its host (virtio-balloon free page reporting, as here), the
// memory the drop freed is given back to the host, and touching it again
// costs a fault there (0.6-1.6 s per GiB measured on the benchmark VM,
// 6.6 CPU-s per GiB for fresh page cache). A system that touches more fresh
// memory per byte read (a page cache of its own, buffers it lets go) pays
// that many times over.
func freshMemoryCost() (float64, error) {
	dropCaches()
	time.Sleep(3 * time.Second) // the balloon reports free pages after 2 s
	const size = 1 << 30
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return 0, err
	}
	defer syscall.Munmap(m)
	start := time.Now()
	for i := 0; i < size; i += 4096 {
		m[i] = 1
	}
	return time.Since(start).Seconds(), nil
}
