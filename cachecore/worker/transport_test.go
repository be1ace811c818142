package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
)

// BenchmarkTransport compares the bulk data path over plain HTTP range reads
// (what the worker serves) with a gRPC server stream of 1 MiB messages, both
// on loopback, reading 64 MiB of warm pages per op; http-sums is the framed
// response clients ask for (a checksum before each page, sent chunked). The faster one is the data
// path (docs/benchmarks.md has the figures).
func BenchmarkTransport(b *testing.B) {
	w, req := warmWorker(b, 64<<20)
	b.Run("http", func(b *testing.B) { benchHTTP(b, w, req.Query(), req.Len) })
	b.Run("http-sums", func(b *testing.B) { // as clients ask: framed pages
		q := req.Query()
		q.Set(SumsParam, "1")
		benchHTTP(b, w, q, req.Len+SumBytes*(req.Len/MiB))
	})
	b.Run("grpc", func(b *testing.B) {
		addr, stop := serveGRPC(b, w)
		defer stop()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
			grpc.WithInitialWindowSize(8<<20), grpc.WithInitialConnWindowSize(16<<20))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		q := []byte(req.Query().Encode())
		b.SetBytes(req.Len)
		for i := 0; i < b.N; i++ {
			st, err := conn.NewStream(context.Background(), &benchService.Streams[0], "/hoard.Bench/Read")
			if err != nil {
				b.Fatal(err)
			}
			if err := st.SendMsg(&q); err != nil {
				b.Fatal(err)
			}
			st.CloseSend()
			var n int64
			for {
				var msg []byte
				err := st.RecvMsg(&msg)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += int64(len(msg))
			}
			if n != req.Len {
				b.Fatalf("read %d bytes", n)
			}
		}
	})
}

// benchHTTP reads w's answer to a GET of ReadPath with query q, of want
// bytes, per op.
func benchHTTP(b *testing.B, w *Worker, q url.Values, want int64) {
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	u := srv.URL + ReadPath + "?" + q.Encode()
	b.SetBytes(want)
	for i := 0; i < b.N; i++ {
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != want {
			b.Fatalf("read %d bytes, %v; want %d", n, err, want)
		}
	}
}

// warmWorker returns a worker with an object of size bytes fully cached.
func warmWorker(b *testing.B, size int64) (*Worker, Request) {
	dir := b.TempDir()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31)
	}
	if err := os.WriteFile(filepath.Join(dir, "obj"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	local, err := ufs.NewLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := local.Stat(context.Background(), "obj")
	if err != nil {
		b.Fatal(err)
	}
	store, err := pagestore.Open(pagestore.Config{Dir: b.TempDir(), Capacity: 2 * size, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(local)
	w, err := New(Config{ID: "bench", Store: store, Sources: srcs})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Close)
	req := Request{Source: local.Source(), Key: "obj", Version: st.Version, Size: size, Len: size}
	if err := w.Read(context.Background(), req, io.Discard); err != nil {
		b.Fatal(err)
	}
	w.Close() // flushes the write-behind queue; hits need no fetch
	return w, req
}

// rawCodec passes []byte messages through gRPC unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

var benchService = grpc.ServiceDesc{
	ServiceName: "hoard.Bench",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Read",
		ServerStreams: true,
		Handler: func(srv any, st grpc.ServerStream) error {
			var q []byte
			if err := st.RecvMsg(&q); err != nil {
				return err
			}
			v, err := url.ParseQuery(string(q))
			if err != nil {
				return err
			}
			req, err := ParseRequest(v)
			if err != nil {
				return err
			}
			return srv.(*Worker).Read(st.Context(), req, streamWriter{st})
		},
	}},
}

type streamWriter struct{ st grpc.ServerStream }

func (s streamWriter) Write(p []byte) (int, error) {
	return len(p), s.st.SendMsg(&p)
}

func serveGRPC(b *testing.B, w *Worker) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.InitialWindowSize(8<<20), grpc.InitialConnWindowSize(16<<20))
	s.RegisterService(&benchService, w)
	go s.Serve(ln)
	return ln.Addr().String(), s.Stop
}
