package pricing

// Raw returns the raw JSON value of the top-level member name of the
// body (the last of duplicate keys, keys compared decoded), nil when it
// is absent or when Forget has run. It is for members ParseBody keeps but
// does not read, such as the Responses API's "background".
func (b *Body) Raw(name string) []byte {
	if k := fieldNamed(name); k != noField {
		return b.fields.get(k)
	}
	return b.otherValue(name)
}
