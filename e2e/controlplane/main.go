// Command controlplane is a real Kubernetes control plane in one binary, built
// from Kubernetes' own Go modules: the test suite's `--cluster=kube` target runs
// it through e2e/controlplane.py.
//
//	controlplane etcd --data-dir DIR --client-url URL --peer-url URL
//	controlplane apiserver [kube-apiserver flags]
//	controlplane controller-manager [kube-controller-manager flags]
//	controlplane scheduler [kube-scheduler flags]
//
// etcd is embedded (go.etcd.io/etcd/server/v3/embed) so that the control plane
// needs nothing but this binary; it prints "etcd ready" on stdout once it serves.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	_ "time/tzdata" // CronJob time zones, as in kube-controller-manager's own main

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = "usage: controlplane etcd|apiserver|controller-manager|scheduler [flags]"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	switch name {
	case "etcd":
		os.Exit(runEtcd(args))
	case "apiserver":
		os.Exit(runCobra(apiserver.NewAPIServerCommand(), args))
	case "controller-manager":
		os.Exit(runCobra(controllermanager.NewControllerManagerCommand(), args))
	case "scheduler":
		os.Exit(runCobra(scheduler.NewSchedulerCommand(), args))
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}

// runCobra runs one of Kubernetes' own component commands with args.
func runCobra(command *cobra.Command, args []string) int {
	command.SetArgs(args)
	return cli.Run(command)
}

// runEtcd serves a single-member etcd until SIGTERM or SIGINT.
func runEtcd(args []string) int {
	flags := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dataDir := flags.String("data-dir", "", "directory of the member's data")
	clientURL := flags.String("client-url", "http://127.0.0.1:2379", "URL clients connect to")
	peerURL := flags.String("peer-url", "http://127.0.0.1:2380", "URL of the (unused) peer listener")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	client, err := url.Parse(*clientURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	peer, err := url.Parse(*peerURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "controlplane"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	// A throw-away test cluster: durability across power loss buys nothing.
	cfg.UnsafeNoFsync = true
	server, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer server.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-server.Server.ReadyNotify():
		fmt.Println("etcd ready")
	case err := <-server.Err():
		fmt.Fprintln(os.Stderr, err)
		return 1
	case <-stop:
		return 0
	}
	select {
	case err := <-server.Err():
		fmt.Fprintln(os.Stderr, err)
		return 1
	case <-stop:
		return 0
	}
}
