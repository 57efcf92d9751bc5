package memnet_test

import (
	"fmt"
	"io"
	"log"

	"github.com/hashicorp/memberlist"
	"github.com/swimring/swimring/membership/memnet"
)

// Two nodes exchange a packet, then a partition separates them.
func Example() {
	network := memnet.New(1)
	defer network.Close()

	a, _ := network.NewTransport()
	b, _ := network.NewTransport()
	fmt.Println(a.Addr(), b.Addr())

	_, _ = a.WriteTo([]byte("ping"), b.Addr())
	p := <-b.PacketCh()
	fmt.Printf("%s from %s\n", p.Buf, p.From)

	_ = network.Partition([]string{a.Addr()}, []string{b.Addr()})
	_, _ = a.WriteTo([]byte("lost"), b.Addr()) // dropped, not an error: like UDP
	_, err := a.DialTimeout(b.Addr(), 0)
	fmt.Println(err)

	network.Heal()
	s := network.Stats()
	fmt.Printf("sent %d, delivered %d, dropped %d\n", s.Total.PacketsSent, s.Total.PacketsDelivered, s.Total.PacketsDropped)
	// Output:
	// 127.0.0.1:40000 127.0.0.1:40001
	// ping from 127.0.0.1:40000
	// memnet: dial 127.0.0.1:40001 from 127.0.0.1:40000: memnet: unreachable
	// sent 2, delivered 1, dropped 1
}

// Wiring a memberlist to the network: set Config.Transport and join by Addr.
// (Not run: see memberlist_test.go for clusters that are.)
func Example_memberlist() {
	network := memnet.New(1)
	defer network.Close()

	var nodes []*memberlist.Memberlist
	for i := range 3 {
		tr, err := network.NewTransport()
		if err != nil {
			panic(err)
		}
		cfg := memberlist.DefaultLocalConfig()
		cfg.Name = fmt.Sprintf("node-%d", i) // names must be unique; the hostname default is not
		cfg.Transport = tr                   // BindAddr/AdvertiseAddr are then ignored
		cfg.Logger = log.New(io.Discard, "", 0)
		m, err := memberlist.Create(cfg)
		if err != nil {
			panic(err)
		}
		defer m.Shutdown() // before network.Close (defers run in reverse)
		if i > 0 {
			if _, err := m.Join([]string{nodes[0].LocalNode().Address()}); err != nil {
				panic(err)
			}
		}
		nodes = append(nodes, m)
	}
}
