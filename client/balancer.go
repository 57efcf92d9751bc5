package client

import (
	"math/rand/v2"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
)

// balancerName is the balancer's name in the service config.
const balancerName = "swimring_owner"

// grpc keeps balancers in one process-wide registry; this one is stateless (the
// state of each ClientConn travels in its addresses' attributes).
func init() {
	balancer.Register(base.NewBalancerBuilder(balancerName, pickerBuilder{}, base.Config{HealthCheck: true}))
}

// pickerBuilder builds a picker over the ready (and, with health checking, SERVING)
// connections.
type pickerBuilder struct{}

func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{byID: make(map[string]balancer.SubConn, len(info.ReadySCs))}
	for sc, sci := range info.ReadySCs {
		if id, ok := sci.Address.Attributes.Value(memberIDAttr{}).(string); ok {
			p.byID[id] = sc
		}
		if h, ok := sci.Address.Attributes.Value(viewAttr{}).(*viewHolder); ok {
			p.view = h
		}
		p.all = append(p.all, sc)
	}
	p.next.Store(rand.Uint32())
	return p
}

// picker sends a call with a key to the key's owner when it is ready, and every other
// call round robin to any ready node (which forwards it).
type picker struct {
	view *viewHolder
	byID map[string]balancer.SubConn
	all  []balancer.SubConn
	next atomic.Uint32
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	if key, ok := info.Ctx.Value(keyCtx{}).(string); ok && p.view != nil {
		if owner, ok := p.view.load().owner(key); ok {
			if sc, ok := p.byID[owner]; ok {
				return balancer.PickResult{SubConn: sc}, nil
			}
		}
	}
	return balancer.PickResult{SubConn: p.all[int(p.next.Add(1))%len(p.all)]}, nil
}
