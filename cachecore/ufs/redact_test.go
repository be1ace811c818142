package ufs_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"hoard.dev/hoard/cachecore/ufs"
)

func TestS3ConfigRedacted(t *testing.T) {
	cfg := ufs.S3Config{
		Endpoint:     "minio.example:9000",
		Region:       "eu-west-3",
		AccessKey:    "AKIAEXAMPLEKEY1234",
		SecretKey:    "wJalrXUtnFEMI-SECRET",
		SessionToken: "FwoGZXIvYXdzE-TOKEN",
		CABundle:     "/etc/ca.pem",
		Insecure:     true, // so that NewS3 does not read the CA bundle
	}
	secrets := []string{cfg.SecretKey, cfg.SessionToken, "AKIAEXAMPLEKEY"}

	s, err := ufs.NewS3(context.Background(), "bucket", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	outs = append(outs,
		fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v %#v", &cfg, &cfg, &cfg),
		fmt.Sprintf("%v %+v", struct{ Cfg ufs.S3Config }{cfg}, []ufs.S3Config{cfg}),
		fmt.Sprintf("%v %+v %s", s, s, s),
	)
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("mount", "cfg", cfg, "ptr", &cfg, slog.Group("g", "cfg", cfg))
		outs = append(outs, buf.String())
	}
	for _, out := range outs {
		for _, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("output contains %q:\n%s", secret, out)
			}
		}
		if !strings.Contains(out, "minio.example:9000") {
			t.Errorf("output lost the endpoint:\n%s", out)
		}
	}
	if !strings.Contains(outs[0], "1234") || !strings.Contains(outs[0], "<redacted>") {
		t.Errorf("String() should show the access key's last four characters and mark secrets redacted: %s", outs[0])
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cfg", cfg)
	if !strings.Contains(buf.String(), `"secret_key":"<redacted>"`) {
		t.Errorf("JSON log: %s", buf.String())
	}
	if empty := fmt.Sprint(ufs.S3Config{}); strings.Contains(empty, "redacted") {
		t.Errorf("an empty config claims redacted secrets: %s", empty)
	}
}
