package test

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"
)

var dashboardPNG = flag.String("dashboard.png", "", "save a screenshot of the dashboard (under load) to this PNG file")

// pageView is what the dashboard test reads off the page.
type pageView struct {
	Updates     int               `json:"updates"`
	Arcs        int               `json:"arcs"`
	RingMembers string            `json:"ringMembers"`
	Checksum    string            `json:"checksum"`
	States      map[string]string `json:"states"` // member id → data-state of its table row
	Verdict     string            `json:"verdict"`
	Conn        string            `json:"conn"`
	Checksums   int               `json:"checksums"` // checksum columns
	Charts      int               `json:"charts"`
}

const pageViewJS = `(() => {
  const ring = document.getElementById("ring");
  const states = {};
  for (const tr of document.querySelectorAll("#members tbody tr")) states[tr.dataset.id] = tr.dataset.state;
  return {
    updates: Number(document.body.dataset.updates || 0),
    arcs: ring.querySelectorAll("path.arc").length,
    ringMembers: ring.dataset.members || "",
    checksum: ring.dataset.checksum || "",
    states,
    verdict: document.getElementById("verdict").textContent,
    conn: document.getElementById("conn").textContent,
    checksums: document.querySelectorAll("#checksums .col").length,
    charts: document.querySelectorAll("#charts .chart").length,
  };
})()`

// TestDashboardChromium loads a real cluster's dashboard in headless Chromium,
// checks that the ring and the member table are rendered from live data, kills a
// node and checks that the page shows it: its row leaves "alive" and the ring
// drops to the survivors, without a reload.
func TestDashboardChromium(t *testing.T) {
	c := newCluster(t, "--metrics", "127.0.0.1:0")
	ps := c.startN(3)
	for _, p := range ps {
		if p.ready.MetricsAddr == "" {
			t.Fatalf("%s: no metrics address in its ready file", p.name())
		}
	}
	b := startBrowser(t, 1440, 1000)
	b.navigate("http://" + ps[0].ready.MetricsAddr + "/")

	read := func() (pageView, string) {
		var v pageView
		if err := b.eval(pageViewJS, &v); err != nil {
			return v, err.Error()
		}
		return v, fmt.Sprintf("%+v", v)
	}
	want := ids(ps)
	waitFor(t, 30*time.Second, "the dashboard to show the 3-node ring and member table", func() (bool, string) {
		v, why := read()
		var got []string
		for id, st := range v.States {
			if st == "alive" {
				got = append(got, id)
			}
		}
		slices.Sort(got)
		return v.Arcs >= 3 && v.RingMembers == "3" && slices.Equal(got, want) && len(v.States) == 3 &&
			v.Checksums == 3 && v.Charts == 3 && v.Verdict == "3 rings agree" && v.Conn == "live", why
	})
	// The checksum on the page is the ring's.
	r, err := ps[0].ring()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := read(); v.Checksum != fmt.Sprintf("%016x", r.GetChecksum()) {
		t.Errorf("page shows checksum %q, node says %016x", v.Checksum, r.GetChecksum())
	}

	if *dashboardPNG != "" {
		// Traffic for the charts: a short bounded load, then a few more updates so
		// that the rates and percentiles are on the page.
		l := startLoad(t, grpcAddrs(ps), "--duration", "20s", "--rate", "400", "--concurrency", "4", "--verify=false")
		if code, _ := l.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("swimring load: exit %d", code)
		}
		b.screenshot(*dashboardPNG)
		t.Logf("screenshot saved to %s", *dashboardPNG)
	}

	before, _ := read()
	victim := ps[2]
	victim.kill9()
	waitFor(t, 60*time.Second, "the page to show "+victim.id+" gone (not alive, ring of 2)", func() (bool, string) {
		v, why := read()
		return v.States[victim.id] != "alive" && v.States[victim.id] != "" && v.RingMembers == "2" && v.Updates > before.Updates, why
	})
	waitFor(t, 30*time.Second, "the page to show the survivors agreeing", func() (bool, string) {
		v, why := read()
		return v.Verdict == "2 rings agree" && v.States[ps[0].id] == "alive" && v.States[ps[1].id] == "alive", why
	})
}
