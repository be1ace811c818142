package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/tests/testenv"
)

// tenantCreds returns real MinIO credentials limited by an IAM policy to
// reading bucket (STS AssumeRole with a session policy).
func tenantCreds(t *testing.T, m *testenv.MinIO, bucket string) ufs.Credentials {
	t.Helper()
	return m.AssumeRole(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket","s3:GetBucketLocation"],`+
		`"Resource":["arn:aws:s3:::`+bucket+`","arn:aws:s3:::`+bucket+`/*"]}]}`)
}

// policyWorker is a worker reading S3 with its own (root) credentials
// where policy allows, served over HTTP; tweaks change its Config.
func policyWorker(t *testing.T, defaults ufs.S3Config, policy sources.Policy, tweaks ...func(*worker.Config)) (*worker.Worker, *httptest.Server) {
	t.Helper()
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := sources.New(defaults, true)
	reg.SetPolicy(policy)
	cfg := worker.Config{ID: "w", Store: store, Sources: reg, Logger: slog.New(slog.DiscardHandler)}
	for _, tw := range tweaks {
		tw(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return w, srv
}

func get(t *testing.T, url string, creds *ufs.Credentials) (int, []byte) {
	t.Helper()
	r := tryGet(url, creds)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.code, r.body
}

// got is the answer of tryGet.
type got struct {
	code int
	body []byte
	err  error
}

// tryGet is get for other goroutines than the test's: it returns its error.
func tryGet(url string, creds *ufs.Credentials) got {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return got{err: err}
	}
	worker.SetCredentialHeaders(req.Header, creds)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return got{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return got{code: resp.StatusCode, body: b, err: err}
}

// wholeRead is the request for all of key in bucket, its version and size
// as the store tells creds.
func wholeRead(t *testing.T, m *testenv.MinIO, creds ufs.Credentials, bucket, key string) worker.Request {
	t.Helper()
	u, err := ufs.NewS3(context.Background(), bucket, m.S3Config().WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	st, err := u.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return worker.Request{Source: objid.S3(m.Endpoint(), false, bucket), Key: key, Version: st.Version, Size: st.Size, Len: st.Size}
}

func mustPattern(t *testing.T, s string) []sources.Pattern {
	p, err := sources.ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return []sources.Pattern{p}
}

// TestTenantReadsOnlyWithItsOwnRights rebuilds finding 6 of issue 11 with
// real MinIO credentials and policies: tenant A (may read team-a) reads an
// object through a worker, which caches it; tenant B (may read only team-b)
// then asks for the same object, and is refused (403, permission denied
// through the client) although the bytes are cached; so is a request with
// no credentials (the worker may not use its own identity here), and B's
// listing of team-a.
func TestTenantReadsOnlyWithItsOwnRights(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "team-a")
	m.MakeBucket(t, "team-b")
	data := testenv.RandomBytes(2<<20+77, 5)
	m.Put(t, "team-a", "model/shard-0", data)
	credsA, credsB := tenantCreds(t, m, "team-a"), tenantCreds(t, m, "team-b")

	defaults := m.S3Config() // the worker's own identity: root, which could read anything
	defaults.Endpoint = ""
	w, srv := policyWorker(t, defaults, sources.Policy{Allow: mustPattern(t, "s3+http://"+m.Endpoint()+"/*")})

	req := wholeRead(t, m, credsA, "team-a", "model/shard-0")
	src := req.Source
	url := srv.URL + worker.ReadPath + "?" + req.Query().Encode()

	if code, got := get(t, url, &credsA); code != http.StatusOK || string(got) != string(data) {
		t.Fatalf("tenant A: %d, %d bytes", code, len(got))
	}
	fetched := w.Status().FetchedBytes
	if code, got := get(t, url, &credsB); code != http.StatusForbidden {
		t.Errorf("tenant B read tenant A's cached object: %d, %d bytes", code, len(got))
	}
	if code, _ := get(t, url, nil); code != http.StatusForbidden {
		t.Errorf("a request without credentials: %d, want 403 (the worker may not use its own identity)", code)
	}
	if code, got := get(t, url, &credsA); code != http.StatusOK || string(got) != string(data) {
		t.Errorf("tenant A again: %d, %d bytes", code, len(got))
	}
	if w.Status().FetchedBytes != fetched {
		t.Error("the refused requests or A's second read fetched from the bucket")
	}

	// Listings: A's page is cached; B may not list team-a.
	lr := worker.ListRequest{Source: src, Opt: ufs.ListOptions{Prefix: "model/"}, TTL: time.Hour}
	lurl := srv.URL + worker.ListPath + "?" + lr.Query().Encode()
	if code, body := get(t, lurl, &credsA); code != http.StatusOK || !strings.Contains(string(body), "shard-0") {
		t.Fatalf("tenant A's listing: %d %s", code, body)
	}
	if code, body := get(t, lurl, &credsB); code != http.StatusForbidden || strings.Contains(string(body), "shard-0") {
		t.Errorf("tenant B listed team-a: %d %s", code, body)
	}

	// Through the client, as a mounter's backend for B's volume would read.
	members, err := membership.Static(membership.Member{ID: "w", Addr: strings.TrimPrefix(srv.URL, "http://"), Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	reg := sources.New(ufs.S3Config{}, false)
	bucketB, err := ufs.NewS3(context.Background(), "team-a", m.S3Config().WithCredentials(credsB))
	if err != nil {
		t.Fatal(err)
	}
	reg.Add(bucketB) // B's own fallback to the bucket, with B's credentials
	c, err := client.New(client.Config{Members: members, Sources: reg, Credentials: &credsB, HotBytes: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, req.Size)
	obj := client.Object{Source: src, Key: req.Key, Version: req.Version, Size: req.Size}
	if _, err := c.ReadAt(context.Background(), obj, buf, 0); !errors.Is(err, ufs.ErrAccessDenied) {
		t.Errorf("tenant B through the client: %v, want permission denied", err)
	}
}

// recorder is a fake S3 endpoint that records every request's credentials.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Header.Get("Authorization")+" "+req.Header.Get("X-Amz-Security-Token"))
	r.mu.Unlock()
	rw.Header().Set("ETag", `"x"`)
	rw.Write([]byte("attacker"))
}

// TestWorkerIsNoForwarder rebuilds finding 2 of issue 11: a request naming
// an endpoint the operator did not allow reaches nothing, and a request
// without credentials is never signed with the worker's own identity
// unless the operator allowed that source. The fake endpoint on 127.0.0.1
// records every credential that reaches it.
func TestWorkerIsNoForwarder(t *testing.T) {
	rec := &recorder{}
	fake := httptest.NewServer(rec)
	t.Cleanup(fake.Close)
	own := ufs.S3Config{AccessKey: "WORKERKEYID", SecretKey: "worker-secret", SessionToken: "WORKER-SESSION-TOKEN", PathStyle: true, Region: "us-east-1"}
	src := objid.S3(strings.TrimPrefix(fake.URL, "http://"), false, "loot")
	req := worker.Request{Source: src, Key: "k", Version: "x", Size: 8, Len: 8}

	for name, policy := range map[string]sources.Policy{
		"endpoint not allowed":        {Allow: mustPattern(t, "s3+https://s3.example.com/*"), Own: mustPattern(t, "*")},
		"allowed, own identity never": {Allow: mustPattern(t, "*")},
		"no policy given":             {},
	} {
		_, srv := policyWorker(t, own, policy)
		code, body := get(t, srv.URL+worker.ReadPath+"?"+req.Query().Encode(), nil)
		if code != http.StatusForbidden {
			t.Errorf("%s: %d %q, want 403", name, code, body)
		}
		code, _ = get(t, srv.URL+worker.ListPath+"?"+(worker.ListRequest{Source: src}).Query().Encode(), nil)
		if code != http.StatusForbidden {
			t.Errorf("%s: listing: %d, want 403", name, code)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.seen {
		if strings.Contains(s, "WORKERKEYID") || strings.Contains(s, "WORKER-SESSION-TOKEN") {
			t.Errorf("the worker's own credentials reached the fake endpoint: %s", s)
		}
	}
	if len(rec.seen) != 0 {
		t.Errorf("the fake endpoint got %d requests, want none", len(rec.seen))
	}
}

// TestEmbeddedWorkerAuthorizesEveryIdentity is finding 6 of issue 11 in the
// mounter's embedded worker, which holds no identity of its own: each
// backend adds its bucket, opened with its volume's credentials, or with
// the node's ambient identity for a volume without a Secret. With
// AuthorizeOwn a request without credentials is checked with a HEAD too:
// here the node's identity (a role that may read only team-b) is refused
// tenant A's cached object, and so is tenant B's credentials, for which no
// backend added a handle (nothing is opened on request).
func TestEmbeddedWorkerAuthorizesEveryIdentity(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "team-a")
	m.MakeBucket(t, "team-b")
	data := testenv.RandomBytes(1<<20+5, 6)
	m.Put(t, "team-a", "x", data)
	credsA, node := tenantCreds(t, m, "team-a"), tenantCreds(t, m, "team-b")

	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := sources.New(ufs.S3Config{}, true)
	reg.SetPolicy(sources.Policy{})
	open := func(creds ufs.Credentials) ufs.UFS {
		u, err := ufs.NewS3(context.Background(), "team-a", m.S3Config().WithCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	reg.AddAs(open(credsA), credsA) // A's volume
	reg.Add(open(node))             // a volume without a Secret: the node's identity
	w, err := worker.New(worker.Config{ID: "node-local", Store: store, Sources: reg, AuthorizeOwn: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)

	st, err := open(credsA).Stat(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	req := worker.Request{Source: objid.S3(m.Endpoint(), false, "team-a"), Key: "x", Version: st.Version, Size: st.Size, Len: st.Size}
	var got strings.Builder
	ra := req
	ra.Creds = &credsA
	if err := w.Read(context.Background(), ra, &got); err != nil || got.String() != string(data) {
		t.Fatalf("tenant A: %v, %d bytes", err, got.Len())
	}
	for name, creds := range map[string]*ufs.Credentials{"the node's identity": nil, "tenant B": &node} {
		var leak strings.Builder
		r := req
		r.Creds = creds
		if err := w.Read(context.Background(), r, &leak); !errors.Is(err, ufs.ErrAccessDenied) || leak.Len() != 0 {
			t.Errorf("%s read tenant A's cached object: %v, %d bytes", name, err, leak.Len())
		}
	}
	if n := w.Status().FetchedBytes; n != st.Size {
		t.Errorf("fetched %d bytes, want the object once (%d)", n, st.Size)
	}
}

// graceCase is tenant A, whose read of object k of team-a a worker with
// AuthTTL ttl and a minute's grace has confirmed (and cached), on a MinIO
// the test may then stop or hang.
type graceCase struct {
	m     *testenv.MinIO
	w     *worker.Worker
	url   string // A's read of k
	creds ufs.Credentials
	data  []byte
}

func newGraceCase(t *testing.T, seed uint64, ttl time.Duration, tweak func(*worker.Config)) graceCase {
	t.Helper()
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "team-a")
	data := testenv.RandomBytes(1<<20+5, seed)
	m.Put(t, "team-a", "k", data)
	credsA := tenantCreds(t, m, "team-a")
	defaults := m.S3Config()
	defaults.Endpoint = ""
	w, srv := policyWorker(t, defaults, sources.Policy{Allow: mustPattern(t, "s3+http://"+m.Endpoint()+"/*")}, func(c *worker.Config) {
		c.AuthTTL, c.AuthGrace = ttl, time.Minute
		if tweak != nil {
			tweak(c)
		}
	})
	req := wholeRead(t, m, credsA, "team-a", "k")
	url := srv.URL + worker.ReadPath + "?" + req.Query().Encode()
	if code, got := get(t, url, &credsA); code != http.StatusOK || string(got) != string(data) {
		t.Fatalf("tenant A with the bucket up: %d, %d bytes", code, len(got))
	}
	return graceCase{m: m, w: w, url: url, creds: credsA, data: data}
}

// TestAuthGraceWhileBucketDown: while the store cannot answer, a tenant it
// confirmed within TTL+grace keeps reading the object's cached pages, and a
// tenant it never confirmed for that object gets nothing, although its
// credentials could read it. Without the grace, a bucket outage longer than
// the TTL failed every cached read (make faults: "bucket stopped" failed
// 243 reads of cached files once the warm-up had taken over a minute).
func TestAuthGraceWhileBucketDown(t *testing.T) {
	const ttl = 200 * time.Millisecond
	g := newGraceCase(t, 9, ttl, nil)
	m, w, url, credsA, data := g.m, g.w, g.url, g.creds, g.data
	credsC := tenantCreds(t, m, "team-a")

	m.Stop(t)
	time.Sleep(2 * ttl)
	if code, got := get(t, url, &credsA); code != http.StatusOK || string(got) != string(data) {
		t.Errorf("tenant A, confirmed %v ago, with the bucket down: %d, %d bytes; want its cached bytes", 2*ttl, code, len(got))
	}
	if n := w.Stats().AuthGraced.Load(); n != 1 {
		t.Errorf("AuthGraced = %d, want 1", n)
	}
	if code, got := get(t, url, &credsC); code == http.StatusOK || len(got) == len(data) {
		t.Errorf("tenant C, never confirmed, with the bucket down: %d, %d bytes; want no bytes", code, len(got))
	}
}

// TestColdReadConfirmedByItsOwnGet: a cold read with a tenant's
// credentials makes no HEAD: its own GET, with those credentials, If-Match
// the version and the size checked, confirms them, and is remembered as a
// HEAD's yes would be. A tenant whose credentials may not read the object
// gets an error and no byte from its own GET, and caches nothing; a warm
// read by another tenant is still confirmed with a HEAD first.
func TestColdReadConfirmedByItsOwnGet(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "team-a")
	data := testenv.RandomBytes(3<<20+11, 12)
	small := testenv.RandomBytes(100<<10, 13)
	m.Put(t, "team-a", "big", data)
	m.Put(t, "team-a", "small", small)
	credsA, credsA2, credsB := tenantCreds(t, m, "team-a"), tenantCreds(t, m, "team-a"), tenantCreds(t, m, "team-b")

	defaults := m.S3Config()
	defaults.Endpoint = ""
	w, srv := policyWorker(t, defaults, sources.Policy{Allow: mustPattern(t, "s3+http://"+m.Endpoint()+"/*")})
	url := func(key string) string {
		req := wholeRead(t, m, credsA, "team-a", key)
		return srv.URL + worker.ReadPath + "?" + req.Query().Encode()
	}

	// B may not read team-a: its cold read is refused by its own GET.
	if code, got := get(t, url("small"), &credsB); code != http.StatusForbidden || len(got) == len(small) {
		t.Errorf("tenant B's cold read: %d, %d bytes; want 403", code, len(got))
	}
	if n := w.Stats().FetchedBytes.Load(); n != 0 {
		t.Errorf("tenant B's refused GET cached %d bytes", n)
	}
	// It counts as a refusal, not as a failure of the bucket (the fetch
	// counts it after it has answered its waiters).
	denied := &w.Stats().FetchRefused[worker.RefusedDenied]
	for deadline := time.Now().Add(5 * time.Second); denied.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if d, e := denied.Load(), w.Stats().FetchErrors.Load(); d != 1 || e != 0 {
		t.Errorf("tenant B's refused GET: %d refusals (denied), %d bucket errors; want 1 and 0", d, e)
	}
	for key, want := range map[string][]byte{"big": data, "small": small} {
		if code, got := get(t, url(key), &credsA); code != http.StatusOK || string(got) != string(want) {
			t.Fatalf("tenant A's cold read of %s: %d, %d bytes", key, code, len(got))
		}
	}
	st := w.Stats()
	if st.AuthChecks.Load() != 0 || st.AuthByFetch.Load() != 2 {
		t.Errorf("tenant A's cold reads: %d HEADs and %d confirmations by GET, want 0 and 2", st.AuthChecks.Load(), st.AuthByFetch.Load())
	}
	// Warm: A is confirmed (no HEAD), A2 (same rights, other credentials)
	// is asked for with a HEAD, B is refused by its HEAD.
	fetched := st.FetchedBytes.Load()
	if code, got := get(t, url("small"), &credsA); code != http.StatusOK || string(got) != string(small) {
		t.Errorf("tenant A warm: %d, %d bytes", code, len(got))
	}
	if code, got := get(t, url("small"), &credsA2); code != http.StatusOK || string(got) != string(small) {
		t.Errorf("tenant A2 warm: %d, %d bytes", code, len(got))
	}
	if code, got := get(t, url("small"), &credsB); code != http.StatusForbidden || len(got) != 0 && string(got) == string(small) {
		t.Errorf("tenant B read the cached object: %d, %d bytes", code, len(got))
	}
	if n := st.AuthChecks.Load(); n != 2 {
		t.Errorf("%d HEADs for the warm reads, want 2 (A2 and B)", n)
	}
	if st.FetchedBytes.Load() != fetched {
		t.Error("a warm read fetched from the bucket")
	}
}

// TestAuthGraceWhileBucketHangs: a store that accepts connections and
// never answers (MinIO stopped with SIGSTOP) must not hold a confirmed
// tenant's cached reads for the transport's timeouts (a minute per
// attempt): the re-confirming HEAD is cut at GraceHeadTimeout and the
// tenant's earlier yes, within its grace, stands.
func TestAuthGraceWhileBucketHangs(t *testing.T) {
	const ttl, cut = 200 * time.Millisecond, 500 * time.Millisecond
	g := newGraceCase(t, 14, ttl, func(c *worker.Config) { c.GraceHeadTimeout = cut })
	m, w, url, credsA, data := g.m, g.w, g.url, g.creds, g.data

	p, err := os.FindProcess(m.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Signal(syscall.SIGCONT) })
	time.Sleep(2 * ttl)
	start := time.Now()
	if code, got := get(t, url, &credsA); code != http.StatusOK || string(got) != string(data) {
		t.Errorf("tenant A, confirmed before the store hung: %d, %d bytes; want its cached bytes", code, len(got))
	}
	if took := time.Since(start); took > cut+5*time.Second {
		t.Errorf("the read took %v with GraceHeadTimeout %v", took, cut)
	}
	if n := w.Stats().AuthGraced.Load(); n != 1 {
		t.Errorf("AuthGraced = %d, want 1", n)
	}
}

// TestRefusedFetchDoesNotFailAnotherTenant: tenant B, without rights to
// team-a, asks first for a cold object, and its GET (made with B's
// credentials) is held by a slow store; tenant A, who may read it, asks
// for the same object meanwhile, is confirmed by its HEAD and joins B's
// fetch, which the bucket refuses. A's read must still succeed from a
// fetch with its own credentials, and the object be cached: before, A got
// B's 403 (and the client read the bucket directly, uncached).
func TestRefusedFetchDoesNotFailAnotherTenant(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "team-a")
	data := testenv.RandomBytes(3<<20+5, 21)
	m.Put(t, "team-a", "big", data)
	credsA, credsB := tenantCreds(t, m, "team-a"), tenantCreds(t, m, "team-b")
	proxy := testenv.NewCountingProxy(t, m.Endpoint())
	// B's GET is held until A has joined it (or 5 s at most).
	proxy.SetFault(testenv.ProxyFault{Delay: 5 * time.Second})

	defaults := m.S3Config()
	defaults.Endpoint = ""
	w, srv := policyWorker(t, defaults, sources.Policy{Allow: mustPattern(t, "s3+http://"+proxy.Endpoint()+"/*")})
	req := wholeRead(t, m, credsA, "team-a", "big")
	req.Source = objid.S3(proxy.Endpoint(), false, "team-a")
	url := srv.URL + worker.ReadPath + "?" + req.Query().Encode()
	st := w.Stats()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}

	bDone, aDone := make(chan got, 1), make(chan got, 1)
	go func() { bDone <- tryGet(url, &credsB) }()
	waitFor("tenant B's GET never reached the store", func() bool { return proxy.GETs("big") > 0 })
	go func() { aDone <- tryGet(url, &credsA) }()
	// B's read waits for its own fetch's first page, A's for the same
	// page of that fetch: two misses.
	waitFor("tenant A never waited for B's fetch", func() bool { return st.PageMisses.Load() >= 2 })
	proxy.SetFault(testenv.ProxyFault{}) // A's own GET is not held
	if a := <-aDone; a.err != nil || a.code != http.StatusOK || string(a.body) != string(data) {
		t.Errorf("tenant A, reading while B's refused fetch was in flight: %d, %d bytes (%.120q), %v; want 200 and the object", a.code, len(a.body), a.body, a.err)
	}
	if b := <-bDone; b.err != nil || b.code != http.StatusForbidden {
		t.Errorf("tenant B: %d, %v; want 403", b.code, b.err)
	}
	if st.RefusalRetries.Load() != 1 {
		t.Errorf("%d pages fetched again after B's refusal, want 1 (A's first page)", st.RefusalRetries.Load())
	}
	if n := st.FetchedBytes.Load(); n != int64(len(data)) {
		t.Errorf("fetched %d bytes, want the object's %d (cached by A's own fetch)", n, len(data))
	}
	gets := proxy.GETs("big")
	if code, body := get(t, url, &credsA); code != http.StatusOK || string(body) != string(data) {
		t.Errorf("tenant A again: %d, %d bytes", code, len(body))
	}
	if proxy.GETs("big") != gets {
		t.Error("tenant A's second read went to the bucket: the object was not cached")
	}
}
