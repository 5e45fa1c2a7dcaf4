// Command coredns is a slim CoreDNS for the real-node test cluster (test/realnode): the
// cluster's DNS, answering <service>.<namespace>.svc.cluster.local from the Kubernetes API.
// It carries only the plugins the cluster's Corefile uses. There is no forward plugin on
// purpose: the cluster has no network beyond its namespace, so a name outside
// cluster.local must fail at once rather than wait for an upstream that never answers.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// The plugins in the order of upstream's plugin.cfg (which decides how a query passes
// through them); dnsserver reads this list when it parses the Corefile.
func init() {
	dnsserver.Directives = []string{
		"ready",
		"health",
		"errors",
		"log",
		"loadbalance",
		"cache",
		"template",
		"hosts",
		"kubernetes",
	}
}

func main() {
	coremain.Run()
}
