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
	Moving      string            `json:"moving"`
	Served      int               `json:"served"` // table rows with a served/s figure
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
    moving: ring.dataset.moving || "",
    served: [...document.querySelectorAll("#members tbody tr")].filter(tr => tr.cells[4] && tr.cells[4].textContent !== "—" && tr.cells[4].textContent !== "0.0").length,
  };
})()`

// TestDashboardChromium loads a real cluster's dashboard in headless Chromium,
// checks that the ring and the member table are rendered from live data, kills a
// node and checks that the page shows it: its row leaves "alive" and the ring
// drops to the survivors, without a reload.
func TestDashboardChromium(t *testing.T) {
	// With -dashboard.png: the README's picture, of five nodes under load a moment
	// after one was killed.
	shoot := *dashboardPNG != ""
	n := 3
	if shoot {
		n = 5
	}
	c := newCluster(t, "--metrics", "127.0.0.1:0")
	ps := c.startN(n)
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
	agree := fmt.Sprintf("%d rings agree", n)
	waitFor(t, 30*time.Second, "the dashboard to show the ring and member table", func() (bool, string) {
		v, why := read()
		var got []string
		for id, st := range v.States {
			if st == "alive" {
				got = append(got, id)
			}
		}
		slices.Sort(got)
		return v.Arcs >= n && v.RingMembers == fmt.Sprint(n) && slices.Equal(got, want) && len(v.States) == n &&
			v.Checksums == n && v.Charts == n && v.Verdict == agree && v.Conn == "live", why
	})
	// The checksum on the page is the ring's.
	r, err := ps[0].ring()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := read(); v.Checksum != fmt.Sprintf("%016x", r.GetChecksum()) {
		t.Errorf("page shows checksum %q, node says %016x", v.Checksum, r.GetChecksum())
	}

	var load *loadRun
	if shoot {
		// Traffic for the charts: half a minute of it on the page before the kill.
		load = startLoad(t, grpcAddrs(ps), "--duration", "60s", "--rate", "500", "--concurrency", "4", "--verify=false")
		waitFor(t, 90*time.Second, "half a minute of traffic on the page", func() (bool, string) {
			v, why := read()
			return v.Served == n && v.Updates >= 35, why
		})
	}

	before, _ := read()
	victim := ps[len(ps)-1]
	victim.kill9()
	waitFor(t, 60*time.Second, "the page to show "+victim.id+" gone (not alive, off the ring)", func() (bool, string) {
		v, why := read()
		return v.States[victim.id] != "alive" && v.States[victim.id] != "" && v.RingMembers == fmt.Sprint(n-1) && v.Updates > before.Updates, why
	})
	if shoot {
		b.screenshot(*dashboardPNG) // partitions still moving: highlighted on the ring
		t.Logf("screenshot saved to %s", *dashboardPNG)
		if code, _ := load.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("swimring load: exit %d", code)
		}
	}
	waitFor(t, 30*time.Second, "the page to show the survivors agreeing", func() (bool, string) {
		v, why := read()
		for _, p := range ps[:len(ps)-1] {
			if v.States[p.id] != "alive" {
				return false, why
			}
		}
		return v.Verdict == fmt.Sprintf("%d rings agree", n-1), why
	})
}
