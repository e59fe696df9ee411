package config

import (
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/strictyaml"
)

// What a reload changes, for the log and Status: budgets added or removed,
// and the sections read at start only that differ.

// budgetChanges lists the budget names only in now (added) and only in
// before (removed).
func budgetChanges(before, now *Compiled) (added, removed []string) {
	names := func(c *Compiled) map[string]bool {
		m := map[string]bool{}
		for _, b := range c.Snapshot.Budgets.Budgets() {
			m[b.Name()] = true
		}
		return m
	}
	a, b := names(before), names(now)
	for n := range b {
		if !a[n] {
			added = append(added, n)
		}
	}
	for n := range a {
		if !b[n] {
			removed = append(removed, n)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// changedSections lists the RestartSections that differ between the
// configuration loaded at start and now. Lines do not count: moving a
// section in the file changes nothing.
func changedSections(start, now *File) []string {
	var out []string
	a, b := reflect.ValueOf(start).Elem(), reflect.ValueOf(now).Elem()
	for _, name := range RestartSections {
		if f, ok := strictyaml.Field(a.Type(), name); ok && !sameValue(a.FieldByIndex(f.Index), b.FieldByIndex(f.Index)) {
			out = append(out, name)
		}
	}
	return out
}

// sameValue compares decoded values, ignoring unexported fields and the
// Line and Column fields that record where a value was written.
func sameValue(a, b reflect.Value) bool {
	if a.Type() == reflect.TypeFor[yaml.Node]() {
		budget := 100_000 // aliases can make a small file a huge tree
		return sameNode(a.Addr().Interface().(*yaml.Node), b.Addr().Interface().(*yaml.Node), &budget)
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() || f.Name == "Line" || f.Name == "Column" {
				continue
			}
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			v := b.MapIndex(k)
			if !v.IsValid() || !sameValue(a.MapIndex(k), v) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// sameNode compares two YAML trees by kind, tag and value, not position.
// Past budget nodes it gives up and says they differ.
func sameNode(a, b *yaml.Node, budget *int) bool {
	if *budget--; *budget < 0 {
		return false
	}
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind == yaml.AliasNode {
		return sameNode(a.Alias, b, budget)
	}
	if b.Kind == yaml.AliasNode {
		return sameNode(a, b.Alias, budget)
	}
	if a.Kind != b.Kind || a.Value != b.Value || a.ShortTag() != b.ShortTag() || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !sameNode(a.Content[i], b.Content[i], budget) {
			return false
		}
	}
	return true
}
