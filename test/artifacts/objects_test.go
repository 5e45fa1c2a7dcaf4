package artifacts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// object is one parsed manifest document with where it came from.
type object struct {
	content map[string]any
	source  string
}

// key names an object the way kubectl does: kind, namespace/name and API group.
func (o object) key() string {
	md, _ := o.content["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if ns, _ := md["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s (%s)", o.content["kind"], name, o.content["apiVersion"])
}

// objectSet indexes objects by key.
type objectSet map[string]object

// parseManifests reads every YAML document of r; comment-only documents are skipped.
func parseManifests(r io.Reader, source string) ([]object, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []object
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("parsing %s: %w", source, err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, object{content: m, source: source})
	}
}

// readManifestFiles parses the given files, or every *.yaml of the given folders.
func readManifestFiles(paths ...string) ([]object, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.yaml"))
		if err != nil {
			return nil, err
		}
		files = append(files, matches...)
	}
	var objs []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		o, err := parseManifests(bytes.NewReader(data), f)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// index keys objs; an object defined twice is an error naming both sources.
func index(objs []object) (objectSet, error) {
	set := objectSet{}
	for _, o := range objs {
		if prev, ok := set[o.key()]; ok {
			return nil, fmt.Errorf("%s is defined twice: in %s and in %s", o.key(), prev.source, o.source)
		}
		set[o.key()] = o
	}
	return set, nil
}

// keys returns the set's keys, sorted.
func (s objectSet) keys() []string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// diff compares two decoded values and returns one line per difference, each naming the
// field path. Lists whose items all carry a name (containers, env, ports, webhooks) name
// the item in the path, so a drift reads "containers[manager].env[AGENTKUBE_MANAGED].value".
func diff(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %s", path, show(got))}
		}
		var out []string
		for _, k := range unionKeys(w, g) {
			wv, inW := w[k]
			gv, inG := g[k]
			p := join(path, k)
			switch {
			case !inG:
				out = append(out, fmt.Sprintf("%s: missing (want %s)", p, show(wv)))
			case !inW:
				out = append(out, fmt.Sprintf("%s: unexpected %s", p, show(gv)))
			default:
				out = append(out, diff(p, wv, gv)...)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want a list, got %s", path, show(got))}
		}
		var out []string
		for i := 0; i < max(len(w), len(g)); i++ {
			switch {
			case i >= len(g):
				out = append(out, fmt.Sprintf("%s: missing (want %s)", itemPath(path, i, w[i]), show(w[i])))
			case i >= len(w):
				out = append(out, fmt.Sprintf("%s: unexpected %s", itemPath(path, i, g[i]), show(g[i])))
			default:
				out = append(out, diff(itemPath(path, i, w[i]), w[i], g[i])...)
			}
		}
		return out
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: want %s, got %s", path, show(want), show(got))}
		}
		return nil
	}
}

func unionKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	if strings.ContainsAny(key, "./") {
		return fmt.Sprintf("%s[%q]", path, key)
	}
	return path + "." + key
}

// itemPath is path[name] for a named item, path[i] otherwise.
func itemPath(path string, i int, item any) string {
	if m, ok := item.(map[string]any); ok {
		if name, ok := m["name"].(string); ok && name != "" {
			return fmt.Sprintf("%s[%s]", path, name)
		}
	}
	return fmt.Sprintf("%s[%d]", path, i)
}

// show prints a value compactly, with its type when it is a scalar (a quoted "9092" and
// a number 9092 are different manifests).
func show(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case map[string]any, []any:
		s := fmt.Sprint(v)
		if len(s) > 120 {
			s = s[:120] + "…"
		}
		return s
	default:
		return fmt.Sprintf("%v (%T)", v, v)
	}
}
