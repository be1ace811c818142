package worker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// ReadPath is the HTTP path of range reads.
const ReadPath = "/v1/read"

// Query encodes r as the query of a GET on ReadPath.
func (r Request) Query() url.Values {
	q := url.Values{
		"src":  {r.Source.String()},
		"key":  {r.Key},
		"ver":  {r.Version},
		"size": {strconv.FormatInt(r.Size, 10)},
		"off":  {strconv.FormatInt(r.Off, 10)},
		"len":  {strconv.FormatInt(r.Len, 10)},
	}
	if r.Blocks {
		q.Set(UnitParam, UnitBlock)
	}
	return q
}

// UnitParam=UnitBlock asks for a read in blocks (Request.Blocks); the
// answer says UnitHeader: UnitBlock, and frames each block with its
// checksum (SumsParam=1 is required).
const (
	UnitParam  = "unit"
	UnitBlock  = "block"
	UnitHeader = "X-Hoard-Unit"
)

// ParseRequest decodes a query made by Query.
func ParseRequest(q url.Values) (Request, error) {
	src, err := objid.ParseSource(q.Get("src"))
	if err != nil {
		return Request{}, fmt.Errorf("parameter src: %w", err)
	}
	r := Request{Source: src, Key: q.Get("key"), Version: q.Get("ver")}
	switch u := q.Get(UnitParam); u {
	case "", "page":
	case UnitBlock:
		r.Blocks = true
	default:
		return Request{}, fmt.Errorf("parameter %s: %q is neither page nor %s", UnitParam, u, UnitBlock)
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"size", &r.Size}, {"off", &r.Off}, {"len", &r.Len}} {
		v, err := strconv.ParseInt(q.Get(f.name), 10, 64)
		if err != nil {
			return Request{}, fmt.Errorf("parameter %s: %w", f.name, err)
		}
		*f.dst = v
	}
	return r, r.Validate()
}

// Paths of the worker's other endpoints.
const (
	WarmPath   = "/v1/warm"   // POST, same query as ReadPath: cache the range, send nothing
	CachedPath = "/v1/cached" // GET, same query as ReadPath: CachedHeader says how much of it is cached
	StatusPath = "/v1/status" // GET: Status as JSON
)

// Handler serves the read, warm, status and health endpoints.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ReadPath, w.serveRead)
	mux.HandleFunc("POST "+WarmPath, w.serveWarm)
	mux.HandleFunc("GET "+CachedPath, w.serveCached)
	mux.HandleFunc("GET "+ListPath, w.serveList)
	mux.HandleFunc("GET "+StatusPath, func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(w.Status())
	})
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write([]byte("ok\n"))
	})
	return mux
}

// Status codes of ReadPath besides 200, and the errors they carry.
const (
	StatusNotFound        = http.StatusNotFound           // ufs.ErrNotFound
	StatusVersionMismatch = http.StatusPreconditionFailed // ufs.ErrVersionMismatch
	StatusThrottled       = http.StatusServiceUnavailable // ufs.ErrThrottled: the bucket asks to slow down
)

// Pages with their checksums. A read that asks SumsParam=1 is answered, if
// it starts and ends on page boundaries (or at the object's end), with
// SumsHeader: SumsCRC32C and PageSizeHeader set and, for each page, its
// checksum (4 bytes, little endian: pagestore.Checksum of the page's key and
// bytes) followed by its bytes. The reader checks each page before it uses
// it. Workers that predate this answer without SumsHeader, with bytes only.
const (
	SumsParam      = "sums"
	SumsHeader     = "X-Hoard-Sums"
	SumsCRC32C     = "crc32c"
	PageSizeHeader = "X-Hoard-Page-Size"
	// SumBytes is the size of a page's checksum in a framed response.
	SumBytes = 4
)

func (w *Worker) serveRead(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, err := ParseRequest(q)
	if err == nil {
		req.Creds, err = credentialsOf(r.Header)
	}
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	out := &lazyHeader{rw: rw, length: req.Len, worker: w.id}
	var dst io.Writer = out
	if q.Get(SumsParam) == "1" {
		if _, err := w.wholePages(req); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		out.extra = map[string]string{SumsHeader: SumsCRC32C, PageSizeHeader: strconv.FormatInt(w.pageSize, 10)}
		if req.Blocks {
			out.extra[UnitHeader] = UnitBlock
		}
		out.trailers = true
		dst = &sumFramer{out: out}
	}
	err = w.Read(r.Context(), req, dst)
	switch {
	case err == nil:
		if !out.sent {
			out.sendHeader() // an empty range
		}
	case out.sent && out.trailers:
		// Whole pages went out: the response ends after the last one,
		// short, and its trailer says why, as the status would have.
		writeErrorTrailer(rw.Header(), err)
	case out.sent:
		// Bytes already went out with a Content-Length: cut the connection
		// so the client sees a short body and reads the rest elsewhere.
		panic(http.ErrAbortHandler)
	default:
		writeError(rw, err)
	}
}

// writeError answers an error of Read, Warm or List as a status, with its
// cause (CauseOf) in CauseHeader.
func writeError(rw http.ResponseWriter, err error) {
	if cause := CauseOf(err); cause != "" {
		rw.Header().Set(CauseHeader, cause)
	}
	if errors.Is(err, ufs.ErrThrottled) {
		rw.Header().Set("Retry-After", "1")
	}
	http.Error(rw, err.Error(), statusOf(err))
}

// CauseOf is CauseHeader's value for an error of Read, Warm or List:
// CauseChecksum, CauseBucket, or empty for the request's own fault or a
// worker that is closing (its clients read from the next worker). A client
// that holds the worker in its process classifies the worker's errors with
// it too.
func CauseOf(err error) string {
	switch {
	case errors.Is(err, ErrStoreChecksum):
		return CauseChecksum
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrClosed):
		return ""
	default:
		return CauseBucket
	}
}

// An error after the first page of a framed response (SumsParam=1) is told
// in the response's trailer: StatusTrailer is the status the error would
// have had before the first byte, CauseHeader its cause, ErrorTrailer its
// text (at most maxErrorTrailer bytes). A framed response is sent chunked
// (no Content-Length) so that it can carry them; a response that ends
// short without StatusTrailer was cut, and the worker is at fault.
const (
	StatusTrailer   = "X-Hoard-Status"
	ErrorTrailer    = "X-Hoard-Error"
	maxErrorTrailer = 1024
)

// trailerKeys are declared in a framed response's Trailer header.
const trailerKeys = StatusTrailer + ", " + CauseHeader + ", " + ErrorTrailer

// writeErrorTrailer sets the trailer values that tell err (see
// StatusTrailer) in h, a response's header after it was sent.
func writeErrorTrailer(h http.Header, err error) {
	h.Set(StatusTrailer, strconv.Itoa(statusOf(err)))
	if cause := CauseOf(err); cause != "" {
		h.Set(CauseHeader, cause)
	}
	msg := err.Error()
	if len(msg) > maxErrorTrailer {
		msg = msg[:maxErrorTrailer]
	}
	h.Set(ErrorTrailer, msg)
}

// CauseHeader on an error response says the bucket, not the worker, failed:
// another worker would most likely fail the same way.
const CauseHeader = "X-Hoard-Cause"

// CauseBucket (in CauseHeader) says the bucket failed at the worker.
const CauseBucket = "bucket"

// CauseChecksum (in CauseHeader) says the bucket sent bytes that do not
// match its own checksum (ErrStoreChecksum): reading it elsewhere would
// get the same bytes, unchecked.
const CauseChecksum = "checksum"

// FetchedHeader on a warm response is the number of bytes fetched.
const FetchedHeader = "X-Hoard-Fetched"

func (w *Worker) serveWarm(rw http.ResponseWriter, r *http.Request) {
	w.serveCount(rw, r, FetchedHeader, w.Warm)
}

// CachedHeader on a CachedPath answer is the number of bytes of the range
// the worker holds.
const CachedHeader = "X-Hoard-Cached"

func (w *Worker) serveCached(rw http.ResponseWriter, r *http.Request) {
	w.serveCount(rw, r, CachedHeader, w.Cached)
}

// serveCount answers a request whose result is a byte count (warm, cached):
// the request and its credentials parsed, do's count in header and no body.
func (w *Worker) serveCount(rw http.ResponseWriter, r *http.Request, header string,
	do func(context.Context, Request) (int64, error)) {
	req, err := ParseRequest(r.URL.Query())
	if err == nil {
		req.Creds, err = credentialsOf(r.Header)
	}
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := do(r.Context(), req)
	if err != nil {
		writeError(rw, err)
		return
	}
	rw.Header().Set(header, strconv.FormatInt(n, 10))
	rw.WriteHeader(http.StatusNoContent)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ufs.ErrAccessDenied):
		return http.StatusForbidden
	case errors.Is(err, ufs.ErrNotFound):
		return StatusNotFound
	case errors.Is(err, ufs.ErrVersionMismatch):
		return StatusVersionMismatch
	case errors.Is(err, ufs.ErrThrottled):
		return StatusThrottled
	default:
		return http.StatusBadGateway
	}
}

// wholePages returns the number of pages of a request that starts on a
// page boundary and ends on one or at the object's end, or an error.
func (w *Worker) wholePages(req Request) (int64, error) {
	if req.Blocks {
		if err := w.validBlocks(req); err != nil {
			return 0, err
		}
		return (req.Len + BlockBytes - 1) / BlockBytes, nil
	}
	end := req.Off + req.Len
	if req.Off%w.pageSize != 0 || (end%w.pageSize != 0 && end != req.Size) {
		return 0, fmt.Errorf("%s=1 needs whole pages of %d bytes: range at %d of %d bytes", SumsParam, w.pageSize, req.Off, req.Len)
	}
	return (req.Len + w.pageSize - 1) / w.pageSize, nil
}

// sumFramer writes each page Read hands it after its checksum.
type sumFramer struct {
	out io.Writer
}

func (f *sumFramer) TakeSummed(page []byte, sum uint32, _ bool) error {
	var b [SumBytes]byte
	binary.LittleEndian.PutUint32(b[:], sum)
	if _, err := f.out.Write(b[:]); err != nil {
		return err
	}
	_, err := f.out.Write(page)
	return err
}

// Write is never called for a request of whole pages.
func (f *sumFramer) Write(p []byte) (int, error) {
	return 0, errors.New("a part of a page in a response of whole pages")
}

// lazyHeader sends the 200 header with the first byte, so an error before
// any byte can still be reported as a status.
type lazyHeader struct {
	rw     http.ResponseWriter
	length int64 // Content-Length, unless trailers
	worker string
	extra  map[string]string // more headers
	// trailers: sent chunked, with trailerKeys declared, not with a
	// Content-Length.
	trailers bool
	sent     bool
}

func (l *lazyHeader) sendHeader() {
	h := l.rw.Header()
	for k, v := range l.extra {
		h.Set(k, v)
	}
	if l.trailers {
		h.Set("Trailer", trailerKeys)
	} else {
		h.Set("Content-Length", strconv.FormatInt(l.length, 10))
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Hoard-Worker", l.worker)
	l.rw.WriteHeader(http.StatusOK)
	l.sent = true
}

func (l *lazyHeader) Write(p []byte) (int, error) {
	if !l.sent {
		l.sendHeader()
	}
	return l.rw.Write(p)
}
