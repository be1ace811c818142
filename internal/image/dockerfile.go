package image

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Final is what the final stage of a Dockerfile says about the image: the
// directory of the build stage copied to / and the config. Only the subset
// hoard's Dockerfile uses is understood (FROM scratch, ARG, COPY --from=STAGE
// DIR /, LABEL, USER, ENV, ENTRYPOINT and CMD in exec form, WORKDIR);
// anything else is an error, so the Dockerfile cannot drift from what
// `make image` builds without this failing.
type Final struct {
	// CopyFrom is the build stage and CopySrc the directory copied to /.
	CopyFrom, CopySrc string
	Config            Config
}

// Config is the part of an image config hoard's images set.
type Config struct {
	Entrypoint []string
	Cmd        []string
	User       string
	WorkingDir string
	Env        []string
	Labels     map[string]string
}

// ParseDockerfile reads a Dockerfile and returns its final stage, with
// ${ARG} references replaced by args (given as --build-arg) or the ARG's
// default.
func ParseDockerfile(path string, args map[string]string) (*Final, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	insts, err := instructions(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	start := -1
	for i, in := range insts {
		if in.cmd == "FROM" {
			start = i
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("%s: no FROM", path)
	}
	if from := strings.Fields(insts[start].rest); len(from) != 1 || from[0] != "scratch" {
		return nil, fmt.Errorf("%s:%d: the final stage must be FROM scratch (the image is the rootfs alone), not %q",
			path, insts[start].line, insts[start].rest)
	}
	fin := &Final{Config: Config{Labels: map[string]string{}}}
	vars := map[string]string{}
	for _, in := range insts[start+1:] {
		if err := fin.apply(in, vars, args); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", path, in.line, in.cmd, err)
		}
	}
	if fin.CopySrc == "" {
		return nil, fmt.Errorf("%s: the final stage copies no rootfs (COPY --from=STAGE DIR /)", path)
	}
	return fin, nil
}

type instruction struct {
	line      int
	cmd, rest string
}

// instructions splits a Dockerfile into instructions, joining continued
// lines and dropping comments and parser directives.
func instructions(r io.Reader) ([]instruction, error) {
	var out []instruction
	sc := bufio.NewScanner(r)
	var cur strings.Builder
	n, first := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			first = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: first, cmd: strings.ToUpper(cmd), rest: strings.TrimSpace(rest)})
		cur.Reset()
	}
	return out, sc.Err()
}

var argRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func expand(s string, vars map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		return vars[name]
	})
}

func (fin *Final) apply(in instruction, vars, args map[string]string) error {
	c := &fin.Config
	switch in.cmd {
	case "ARG":
		name, def, _ := strings.Cut(in.rest, "=")
		if v, ok := args[name]; ok {
			def = v
		}
		vars[name] = unquote(def)
	case "COPY":
		f := strings.Fields(in.rest)
		if len(f) != 3 || !strings.HasPrefix(f[0], "--from=") || f[2] != "/" {
			return fmt.Errorf("want COPY --from=STAGE DIR /, have %q", in.rest)
		}
		if fin.CopySrc != "" {
			return fmt.Errorf("a second COPY: the image is one rootfs")
		}
		fin.CopyFrom, fin.CopySrc = strings.TrimPrefix(f[0], "--from="), f[1]
	case "LABEL":
		kvs, err := keyValues(expand(in.rest, vars))
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			c.Labels[kv[0]] = kv[1]
		}
	case "ENV":
		kvs, err := keyValues(expand(in.rest, vars))
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			c.Env = append(c.Env, kv[0]+"="+kv[1])
		}
	case "USER":
		c.User = expand(in.rest, vars)
	case "WORKDIR":
		c.WorkingDir = expand(in.rest, vars)
	case "ENTRYPOINT", "CMD":
		var v []string
		if err := json.Unmarshal([]byte(in.rest), &v); err != nil {
			return fmt.Errorf("want the exec form [\"...\"]: %v", err)
		}
		if in.cmd == "ENTRYPOINT" {
			c.Entrypoint = v
		} else {
			c.Cmd = v
		}
	default:
		return fmt.Errorf("not supported in the final stage (internal/image builds the e2e image from it)")
	}
	return nil
}

// keyValues parses k=v k2="v 2" ...
func keyValues(s string) ([][2]string, error) {
	var out [][2]string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"") {
			return nil, fmt.Errorf("want key=value, have %q", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			v, s = rest[1:end+1], rest[end+2:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func unquote(s string) string { return strings.Trim(s, `"`) }
