package hashring_test

import (
	"fmt"

	"github.com/swimring/swimring/hashring"
)

func Example() {
	// Every node builds the ring from the same member set and config...
	ring, err := hashring.New(hashring.DefaultConfig(), "node-c", "node-a", "node-b")
	if err != nil {
		panic(err)
	}
	// ...publishes it for lock-free readers...
	var current hashring.Holder
	current.Store(ring)

	// ...and looks keys up on the current snapshot.
	owner, _ := current.Load().Owner("user:42")
	replicas := current.Load().OwnerN("user:42", 2)
	fmt.Println("owner:", owner, "replicas:", replicas)

	// A membership change builds a new ring; Diff says what to hand off.
	next, _ := hashring.New(hashring.DefaultConfig(), "node-a", "node-b", "node-c", "node-d")
	moves := hashring.Diff(current.Swap(next), next)
	toD := 0
	for _, m := range moves {
		if m.To == "node-d" {
			toD++
		}
	}
	fmt.Printf("%d of %d partitions moved, all to node-d: %v\n", len(moves), next.PartitionCount(), toD == len(moves))
	fmt.Println("same member set, same checksum:", ring.Checksum() == mustChecksum("node-b", "node-c", "node-a"))

	_, err = hashring.New(hashring.Config{}, "node-a", "node-a")
	fmt.Println(err)

	// Output:
	// owner: node-a replicas: [node-a node-b]
	// 555 of 2039 partitions moved, all to node-d: true
	// same member set, same checksum: true
	// hashring: duplicate member: "node-a"
}

func mustChecksum(members ...string) uint64 {
	r, err := hashring.New(hashring.DefaultConfig(), members...)
	if err != nil {
		panic(err)
	}
	return r.Checksum()
}
