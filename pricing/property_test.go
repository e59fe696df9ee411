package pricing

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pieces are the building blocks of random prompt text: ASCII, characters
// JSON escapes, and 2-, 3- and 4-byte UTF-8.
var pieces = []string{"a", "Z", " ", "the", "\n", "\t", `"`, `\`, "<", ">", "&", "\x01", "é", "ß", "中", "文", "\u2028", "🙂", "𝄞", "0"}

func randomText(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(40) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// tokenize splits s into a random number of non-empty byte ranges: any
// tokenization the server can use is one of these, since every token of a
// byte-level or byte-fallback tokenizer covers at least one byte.
func tokenize(r *rand.Rand, s string) int64 {
	var tokens int64
	for i := 0; i < len(s); {
		i += 1 + r.IntN(4)
		tokens++
	}
	return tokens
}

// escapeAll writes s as a JSON string with every non-ASCII rune as a \u
// escape, the longest spelling of the shortest text.
func escapeAll(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c < 0x80 && c >= 0x20 && c != '"' && c != '\\':
			b.WriteRune(c)
		case c > 0xFFFF:
			c -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(c>>10), 0xDC00+(c&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestWorstCasePromptBoundsAnyTokenization checks, on random conversations,
// that the worst-case prompt is at least the tokens of any tokenization of
// the client's text plus the fixed tokens of a Llama-3-style chat template
// (per message: <|start_header_id|>, <|end_header_id|>, "\n\n", <|eot_id|>;
// per prompt: <|begin_of_text|> and the 4-token generation prompt), however
// the JSON spells the strings.
func TestWorstCasePromptBoundsAnyTokenization(t *testing.T) {
	const templatePerMessage, templatePerPrompt = 4, 5
	roles := []string{"system", "user", "assistant", "developer"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		var plain, escaped strings.Builder
		plain.WriteString(`{"model":"m","messages":[`)
		escaped.WriteString(`{"model":"m","messages":[`)
		count := 1 + r.IntN(6)
		tokens := int64(templatePerPrompt)
		var textBytes int64
		for j := range count {
			if j > 0 {
				plain.WriteByte(',')
				escaped.WriteByte(',')
			}
			role := roles[r.IntN(len(roles))]
			var content any
			var parts []string
			if r.IntN(2) == 0 {
				s := randomText(r)
				content, parts = s, []string{s}
			} else {
				var list []map[string]string
				for range r.IntN(4) {
					s := randomText(r)
					list = append(list, map[string]string{"type": "text", "text": s})
					parts = append(parts, s)
				}
				content = list
			}
			enc, err := json.Marshal(map[string]any{"role": role, "content": content})
			require.NoError(t, err)
			plain.Write(enc)

			fmt.Fprintf(&escaped, `{"role":%s,"content":`, escapeAll(role))
			if s, ok := content.(string); ok {
				escaped.WriteString(escapeAll(s))
			} else {
				escaped.WriteByte('[')
				for k, s := range parts {
					if k > 0 {
						escaped.WriteByte(',')
					}
					fmt.Fprintf(&escaped, `{"type":"text","text":%s}`, escapeAll(s))
				}
				escaped.WriteByte(']')
			}
			escaped.WriteByte('}')

			tokens += templatePerMessage + tokenize(r, role)
			textBytes += int64(len(role))
			for _, s := range parts {
				require.True(t, utf8.ValidString(s))
				tokens += tokenize(r, s)
				textBytes += int64(len(s))
			}
		}
		plain.WriteString(`]}`)
		escaped.WriteString(`]}`)

		a, err := ParseRequest(ChatCompletions, []byte(plain.String()))
		require.NoError(t, err, plain.String())
		b, err := ParseRequest(ChatCompletions, []byte(escaped.String()))
		require.NoError(t, err, escaped.String())
		assert.Equal(t, a.PromptBytes, b.PromptBytes, "case %d: the spelling of strings changes nothing", i)
		assert.Equal(t, textBytes+2*int64(count), a.PromptBytes, "case %d: text plus the quotes of each role", i)
		assert.GreaterOrEqual(t, a.WorstCase(0).Prompt, tokens, "case %d", i)
	}
}
