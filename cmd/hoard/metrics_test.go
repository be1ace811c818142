package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestOpsFlagAddress: --metrics-addr is another name for --health-addr
// where that is the flag, and the two naming different addresses is an
// error that says which to give.
func TestOpsFlagAddress(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{nil, "", ""},
		{[]string{"--health-addr", ":7071"}, ":7071", ""},
		{[]string{"--metrics-addr", ":7071"}, ":7071", ""},
		{[]string{"--metrics-addr", ":7071", "--health-addr", ":7071"}, ":7071", ""},
		{[]string{"--metrics-addr", ":9100", "--health-addr", ":7071"}, "", "give only --health-addr"},
	} {
		var f opsFlag
		fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
		f.addHealth(fs, "ok once serving", ":7071")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := f.address()
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v: %q, %v; want %q, error %q", tc.args, got, err, tc.want, tc.wantErr)
		}
	}
}
