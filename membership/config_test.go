package membership

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestPresetsValid(t *testing.T) {
	for name, cfg := range map[string]Config{"LAN": LANConfig(), "Local": LocalConfig()} {
		cfg.ID = "a"
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s preset: %v", name, err)
		}
	}
	if LocalConfig().RetransmitMult < 3 {
		t.Error("Local preset must not use RetransmitMult 2 (stragglers)")
	}
}

func TestValidate(t *testing.T) {
	base := func() Config { c := LocalConfig(); c.ID = "a"; return c }
	cases := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"no id":          {func(c *Config) { c.ID = "" }, "ID is required"},
		"long id":        {func(c *Config) { c.ID = strings.Repeat("i", 200) }, "at most 128"},
		"bind":           {func(c *Config) { c.BindAddr = "nope" }, "BindAddr"},
		"bind port":      {func(c *Config) { c.BindAddr = "127.0.0.1:x" }, "BindAddr"},
		"advertise":      {func(c *Config) { c.AdvertiseAddr = "1.2.3.4" }, "AdvertiseAddr"},
		"seed":           {func(c *Config) { c.Seeds = []string{"host-without-port"} }, "Seeds[0]"},
		"cluster name":   {func(c *Config) { c.ClusterName = strings.Repeat("c", 300) }, "ClusterName"},
		"key":            {func(c *Config) { c.SecretKeys = [][]byte{[]byte("short")} }, "SecretKeys[0]"},
		"label key":      {func(c *Config) { c.Labels = map[string]string{"": "v"} }, "empty key"},
		"negative":       {func(c *Config) { c.ProbeInterval = -1 }, "ProbeInterval is negative"},
		"negative int":   {func(c *Config) { c.GossipNodes = -1 }, "GossipNodes is negative"},
		"probe timeout":  {func(c *Config) { c.ProbeTimeout = c.ProbeInterval }, "ProbeTimeout"},
		"backoff":        {func(c *Config) { c.JoinRetry = Backoff{Initial: 2, Max: 1} }, "JoinRetry.Max"},
		"metadata large": {func(c *Config) { c.Labels = map[string]string{"k": strings.Repeat("v", 600)} }, "512"},
	}
	for name, tc := range cases {
		c := base()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
			continue
		}
		if name == "metadata large" {
			if !errors.Is(err, ErrMetadataTooLarge) {
				t.Errorf("%s: %v does not wrap ErrMetadataTooLarge", name, err)
			}
		} else if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v does not wrap ErrInvalidConfig", name, err)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted an invalid config", name)
		}
	}
}

func TestZeroTimingTakesLANDefaults(t *testing.T) {
	c := Config{ID: "a", BindAddr: "127.0.0.1:0"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if d.ProbeInterval != LANConfig().ProbeInterval || d.HealInterval != LANConfig().HealInterval {
		t.Fatalf("defaults not applied: %+v", d)
	}
}

func TestNewCopiesConfig(t *testing.T) {
	c := &cluster{t: t}
	cfg := c.config("a")
	labels := map[string]string{"zone": "z1"}
	cfg.Labels = labels
	m := c.start(cfg)
	labels["zone"] = "changed"
	if got := m.Self().Labels["zone"]; got != "z1" {
		t.Fatalf("New did not copy Labels: %q", got)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
