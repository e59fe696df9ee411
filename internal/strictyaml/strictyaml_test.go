package strictyaml

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type own struct{ Value string }

func (o *own) UnmarshalYAML(n *yaml.Node) error { return n.Decode(&o.Value) }

type common struct {
	Timeout string `yaml:"timeout"`
}

type item struct {
	Name string `yaml:"name"`
}

type schema struct {
	Backend string `yaml:"backend"`
	Redis   *struct {
		Address string `yaml:"address"`
	} `yaml:"redis"`
	Common  common          `yaml:",inline"`
	Items   []item          `yaml:"items"`
	ByName  map[string]item `yaml:"by_name"`
	Own     own             `yaml:"own"`
	Raw     yaml.Node       `yaml:"raw"`
	Plain   int             // yaml.v3 calls it "plain"
	Skipped string          `yaml:"-"`
}

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	return doc.Content[0]
}

func TestCheckFindsEveryUnknownKeyWithItsLine(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // "line path hint"
	}{
		{"all known", "backend: x\nredis: {address: a}\ntimeout: 1s\nitems: [{name: a}]\nby_name: {a: {name: b}}\nown: {anything: 1}\nraw: {anything: 1}\nplain: 1\n", nil},
		{"misspelt top key", "backnd: x\n", []string{`1 backnd ; did you mean "backend"? (allowed: backend, redis, timeout, items, by_name, own, raw, plain)`}},
		{"nested struct", "redis:\n  adress: a\n", []string{`2 redis.adress ; did you mean "address"? (allowed: address)`}},
		{"sequence item", "items:\n  - name: a\n  - nme: b\n", []string{`3 items[1].nme ; did you mean "name"? (allowed: name)`}},
		{"map value", "by_name:\n  a: {nam: b}\n", []string{`2 by_name.a.nam ; did you mean "name"? (allowed: name)`}},
		{"alias followed", "x: &r {adress: a}\nredis: *r\n", []string{`1 x  (allowed: backend, redis, timeout, items, by_name, own, raw, plain)`, `1 redis.adress ; did you mean "address"? (allowed: address)`}},
		{"merge checked", "base: &b {backend: x}\n<<: [*b, {bakend: y}]\n", []string{`1 base  (allowed: backend, redis, timeout, items, by_name, own, raw, plain)`, `2 bakend ; did you mean "backend"? (allowed: backend, redis, timeout, items, by_name, own, raw, plain)`}},
		{"skipped field", "skipped: x\n", []string{`1 skipped  (allowed: backend, redis, timeout, items, by_name, own, raw, plain)`}},
		{"wrong kinds left to the decoder", "redis: [a]\nitems: {a: b}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := Check(node(t, tt.src), reflect.TypeFor[schema](), "")
			var got []string
			for _, u := range keys.Unknown {
				got = append(got, fmtUnknown(u))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func fmtUnknown(u Unknown) string {
	return string(rune('0'+u.Line)) + " " + u.Path + " " + u.Hint()
}

func TestCheckRecordsLinesUnderAPrefix(t *testing.T) {
	keys := Check(node(t, "backend: x\nredis:\n  address: a\nitems:\n  - name: n\n"), reflect.TypeFor[schema](), "store")
	assert.Equal(t, map[string]int{"store.backend": 1, "store.redis": 2, "store.redis.address": 3, "store.items": 4, "store.items[0].name": 5}, keys.Lines)
	assert.Equal(t, 3, keys.Line("store.redis.address"))
	assert.Equal(t, 2, keys.Line("store.redis.timeout"), "the nearest parent")
	assert.Equal(t, 5, keys.Line("store.items[0].name"))
	assert.Equal(t, 4, keys.Line("store.items[1]"))
	assert.Zero(t, keys.Line("other"))
}

func TestCheckStopsAtItsOwnUnmarshalerOnlyBelowTheRoot(t *testing.T) {
	keys := Check(node(t, "value: x\nother: y\n"), reflect.TypeFor[own](), "")
	require.Len(t, keys.Unknown, 1, "the root is checked: callers pass the plain type of their UnmarshalYAML")
	assert.Equal(t, "other", keys.Unknown[0].Path)
}

func TestDecode(t *testing.T) {
	var it item
	err := Decode(node(t, "name: a\nnmae: b\ntoken: c\n"), &it)
	var te *yaml.TypeError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, []string{
		`line 2: field nmae not found; did you mean "name"? (allowed: name)`,
		`line 3: field token not found (allowed: name)`,
	}, te.Errors)

	require.NoError(t, Decode(node(t, "name: a\n"), &it))
	assert.Equal(t, "a", it.Name)
}

func TestError(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Line: 3, Where: `budget "a"`, Msg: "needs a period"}, `line 3: budget "a": needs a period`},
		{Error{Line: 3, Msg: "budgets[0] has no name"}, "line 3: budgets[0] has no name"},
		{Error{Where: "store.backend", Msg: "unknown backend"}, "store.backend: unknown backend"},
		{Error{Msg: "x"}, "x"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.err.Error())
	}
}

func TestKindName(t *testing.T) {
	for k, want := range map[yaml.Kind]string{yaml.ScalarNode: "scalar", yaml.SequenceNode: "sequence",
		yaml.MappingNode: "mapping", yaml.AliasNode: "alias", yaml.DocumentNode: "document"} {
		assert.Equal(t, want, KindName(k))
	}
}
