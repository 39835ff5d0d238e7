package rtm2

// The line syntax of the conformance scenarios (tests/conformance/README.md): words, options,
// outcomes, `size:N` values, lists and pairs.

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// cfWords splits a line into words; double quotes group, with \" \\ and \n escapes.
func cfWords(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '"':
			inWord = true
			for {
				i++
				if i >= len(rs) {
					return nil, fmt.Errorf("unterminated quote")
				}
				if rs[i] == '"' {
					break
				}
				if rs[i] != '\\' {
					cur.WriteRune(rs[i])
					continue
				}
				i++
				if i >= len(rs) {
					return nil, fmt.Errorf("bad escape at end of line")
				}
				switch rs[i] {
				case 'n':
					cur.WriteByte('\n')
				case '"', '\\':
					cur.WriteRune(rs[i])
				default:
					return nil, fmt.Errorf("bad escape %q", rs[i])
				}
			}
		default:
			inWord = true
			cur.WriteRune(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

var (
	cfSizeRe = regexp.MustCompile(`^size:(\d+)$`)
	cfKeyRe  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// cfExpand: `size:N` stands for N `x` characters.
func cfExpand(v string) string {
	if m := cfSizeRe.FindStringSubmatch(v); m != nil {
		n, _ := strconv.Atoi(m[1])
		return strings.Repeat("x", n)
	}
	return v
}

// cfStep is one step: positional words, `key=value` options and the expected outcome.
type cfStep struct {
	line      int
	text      string // the line as written
	actor, op string
	args      []string
	opts      map[string]string
	wantErr   int // 0: the step must succeed
}

func cfParseStep(line int, text string, w []string) (*cfStep, error) {
	w = append([]string(nil), w...)
	s := &cfStep{line: line, text: text, opts: map[string]string{}}
	for i, x := range w {
		if x != "->" {
			continue
		}
		tail := w[i:]
		w = w[:i]
		switch {
		case len(tail) == 2 && tail[1] == "ok":
		case len(tail) == 3 && tail[1] == "error":
			code, err := strconv.Atoi(tail[2])
			if err != nil || code <= 0 {
				return nil, fmt.Errorf("bad outcome %q", strings.Join(tail, " "))
			}
			s.wantErr = code
		default:
			return nil, fmt.Errorf("bad outcome %q", strings.Join(tail, " "))
		}
		break
	}
	if len(w) < 2 {
		return nil, fmt.Errorf("a step needs an actor and an operation")
	}
	s.actor, s.op = w[0], w[1]
	for _, x := range w[2:] {
		if k, v, ok := strings.Cut(x, "="); ok && cfKeyRe.MatchString(k) {
			s.opts[k] = cfExpand(v)
		} else {
			s.args = append(s.args, cfExpand(x))
		}
	}
	return s, nil
}

// cfList: a comma-separated list; "" is the empty list.
func cfList(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

type cfPair struct{ k, v string }

// cfPairs: `k:v,k2:v2` in order (repeated keys kept); `k` alone is `k:`.
func cfPairs(v string) []cfPair {
	var out []cfPair
	for _, x := range cfList(v) {
		k, val, _ := strings.Cut(x, ":")
		out = append(out, cfPair{k, val})
	}
	return out
}

// cfCanon is a list compared as a set.
func cfCanon(xs []string) string {
	set := map[string]bool{}
	for _, x := range xs {
		set[x] = true
	}
	out := make([]string, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func cfCanonMap(m map[string]string) string {
	var xs []string
	for k, v := range m {
		xs = append(xs, k+":"+v)
	}
	return cfCanon(xs)
}

func cfKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cfFlag: a BOOL option with its default.
func cfFlag(o map[string]string, k string, def bool) bool {
	if v, ok := o[k]; ok {
		return v == "true"
	}
	return def
}

// cfGenerated: the pairs of `key=` (states= / items=) or of a generator (count=, big_key=,
// big_value=).
func cfGenerated(o map[string]string, key string) ([]cfPair, error) {
	num := func(k string) (int, error) {
		n, err := strconv.Atoi(o[k])
		if err != nil {
			return 0, fmt.Errorf("%s= needs a number", k)
		}
		return n, nil
	}
	switch {
	case o["count"] != "":
		n, err := num("count")
		if err != nil {
			return nil, err
		}
		out := make([]cfPair, n)
		for i := range out {
			out[i] = cfPair{fmt.Sprintf("k%d", i), "v"}
		}
		return out, nil
	case o["big_key"] != "":
		n, err := num("big_key")
		if err != nil {
			return nil, err
		}
		return []cfPair{{strings.Repeat("x", n), "v"}}, nil
	case o["big_value"] != "":
		n, err := num("big_value")
		if err != nil {
			return nil, err
		}
		return []cfPair{{fmt.Sprintf("big%d", n), strings.Repeat("x", n)}}, nil
	}
	v, ok := o[key]
	if !ok {
		return nil, fmt.Errorf("%s= (or count=, big_key=, big_value=) is needed", key)
	}
	return cfPairs(v), nil
}

// cfDuplicateKey is a key given twice in pairs ("" if none): a Go map cannot hold it.
func cfDuplicateKey(ps []cfPair) string {
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.k] {
			return p.k
		}
		seen[p.k] = true
	}
	return ""
}
