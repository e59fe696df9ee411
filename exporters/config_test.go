package exporters_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/exporters"
)

// section decodes the exporters node of a whole configuration document.
func section(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var f struct {
		Exporters yaml.Node `yaml:"exporters"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(doc), &f))
	return &f.Exporters
}

func TestTheSpecExampleDecodes(t *testing.T) {
	var data []byte
	for dir, _ := os.Getwd(); dir != "/"; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "..", "shared", "spec", "spendguard.example.yaml")); err == nil {
			data = b
			break
		}
	}
	require.NotNil(t, data, "../shared/spec/spendguard.example.yaml beside the repository")
	env := map[string]string{
		"LANGFUSE_BASIC_AUTH": "cGs6c2s=", "HELICONE_API_KEY": "sk-h", "SPENDGUARD_ALERT_WEBHOOK": "https://hooks.slack.com/services/T/B/X",
		"SPENDGUARD_PG_DSN": "postgres://x", "SPENDGUARD_REDIS_PASSWORD": "p", "SPENDGUARD_ADMIN_TOKEN": "t",
	}
	doc := os.Expand(string(data), func(k string) string { return env[k] })

	cfg, err := exporters.Decode(section(t, doc))
	require.NoError(t, err)
	assert.Equal(t, 10000, cfg.QueueSize)
	require.NotNil(t, cfg.OTLP)
	assert.Equal(t, "https://cloud.langfuse.com/api/public/otel/v1/traces", cfg.OTLP.Endpoint)
	assert.Equal(t, map[string]string{"Authorization": "Basic cGs6c2s=", "x-langfuse-ingestion-version": "4"}, cfg.OTLP.Headers)
	require.NotNil(t, cfg.Helicone)
	assert.Equal(t, "sk-h", cfg.Helicone.APIKey)
	require.NotNil(t, cfg.Webhook)
	assert.Equal(t, "slack", cfg.Webhook.Format)
	assert.Equal(t, []string{"soft_cap_crossed", "hard_cap_reached"}, cfg.Webhook.Events)
	require.NotNil(t, cfg.Log)
	assert.Equal(t, "stdout", cfg.Log.Path)
	require.NotNil(t, cfg.Postgres)
	assert.Equal(t, "postgres://x", cfg.Postgres.DSN)
}

func TestEveryProblemIsReportedWithItsLine(t *testing.T) {
	doc := `version: 1
exporters:
  queue_size: -1
  max_retries: 500
  retry_backoff: 1m
  retry_backoff_max: 10s
  retry_for: -30s
  otlp:
    endpoint: cloud.langfuse.com
    compresion: gzip
  helicone:
    api_key: ""
  webhook:
    url: https://hooks.example/x
    format: teams
    events: [soft_cap_crossed, budget_exhausted]
  log: {}
  ledger: {}
  postgres:
    dsn: ""
    reconcile: {vllm_metrics_urls: [vllm:8000], interval: -1s}
`
	_, err := exporters.Decode(section(t, doc))
	require.Error(t, err)
	got := strings.Split(err.Error(), "\n")
	assert.ElementsMatch(t, []string{
		`line 10: exporters.otlp.compresion: unknown key; did you mean "compression"? (allowed: endpoint, headers, compression, service_name, user_dimension, session_dimension, provider_name)`,
		"line 18: exporters.ledger: unknown key (allowed: queue_size, batch_size, retry_for, max_retries, retry_backoff, retry_backoff_max, timeout, otlp, helicone, webhook, log, postgres)",
		"line 3: exporters.queue_size: must be between 1 and 10000000 (got -1)",
		"line 4: exporters.max_retries: must be between 0 and 100 (got 500)",
		"line 5: exporters.retry_backoff: 1m0s is longer than retry_backoff_max 10s",
		"line 7: exporters.retry_for: must not be negative (got -30s)",
		"line 9: exporters.otlp.endpoint: is not an http or https URL",
		"line 12: exporters.helicone.api_key: is required (is its environment variable set?)",
		`line 15: exporters.webhook.format: "teams" is neither slack nor json`,
		`line 16: exporters.webhook.events: "budget_exhausted" is not one of soft_cap_crossed, hard_cap_reached, threshold_crossed`,
		"line 17: exporters.log.path: is required: stdout, stderr or a file path",
		"line 20: exporters.postgres.dsn: is required: a PostgreSQL connection string, e.g. postgres://user@host:5432/db",
		`line 21: exporters.postgres.reconcile.vllm_metrics_urls: [0] "vllm:8000" is not an http or https URL`,
		"line 21: exporters.postgres.reconcile.interval: must not be negative (got -1s)",
	}, got)
	assert.NotContains(t, err.Error(), "hooks.example", "URLs are secrets")
}

func TestAnAbsentSectionHasNoExporters(t *testing.T) {
	cfg, err := exporters.Decode(section(t, "version: 1\n"))
	require.NoError(t, err)
	assert.Nil(t, cfg.OTLP)
	f, err := exporters.New(cfg, nil)
	require.NoError(t, err)
	assert.Empty(t, f.Stats())
	assert.False(t, f.WantsRequestBody())
	assert.False(t, f.WantsBudgets())
}

func TestDurationsAndDefaults(t *testing.T) {
	cfg, err := exporters.Decode(section(t, "exporters:\n  timeout: 2s\n  retry_for: 90s\n  max_retries: 0\n  log: {path: stderr}\n"))
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.Timeout)
	assert.Equal(t, 90*time.Second, cfg.RetryFor)
	require.NotNil(t, cfg.MaxRetries)
	assert.Zero(t, *cfg.MaxRetries)
	f, err := exporters.New(cfg, nil)
	require.NoError(t, err)
	require.Len(t, f.Stats(), 1)
	assert.Equal(t, "log", f.Stats()[0].Exporter)
	assert.Equal(t, exporters.DefaultQueueSize, f.Stats()[0].QueueCapacity)
}
