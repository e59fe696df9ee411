package pricing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBodyRaw(t *testing.T) {
	var b Body
	body := []byte(`{"model":"m","input":"hi","background":true,"b\u0061ckground":false,"store":null}`)
	require.NoError(t, ParseBody(&b, Responses, body))
	assert.Equal(t, "false", string(b.Raw("background")), "the last of duplicate keys, decoded")
	assert.Equal(t, "null", string(b.Raw("store")))
	assert.Equal(t, `"m"`, string(b.Raw("model")))
	assert.Nil(t, b.Raw("absent"))
	b.Forget()
	assert.Nil(t, b.Raw("background"))
}
