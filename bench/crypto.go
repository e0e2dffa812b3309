package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"runtime"
	"time"

	"github.com/finp2p/go-finp2p/asset"
	"github.com/finp2p/go-finp2p/ledger"
)

// cryptoOp is one signature operation a transfer makes, measured alone.
type cryptoOp struct {
	what string
	op   func() error
}

// measureCPU runs op n times on one goroutine and returns the process CPU
// time per run (the nodes are idle meanwhile) and the wall time per run.
func measureCPU(n int, op func() error) (cpu, wall time.Duration, err error) {
	for range n / 10 { // warm-up
		if err := op(); err != nil {
			return 0, 0, err
		}
	}
	c0, t0 := cpuTime(), time.Now()
	for range n {
		if err := op(); err != nil {
			return 0, 0, err
		}
	}
	return (cpuTime() - c0) / time.Duration(n), time.Since(t0) / time.Duration(n), nil
}

// cryptoSection compares the CPU time of the signatures and verifications
// one transfer makes with the whole CPU time of a transfer. Reading
// node.Execute and the owner's handler, a transfer makes four:
//
//  1. the requester seals the request (asset.SealRequest: one Ed25519 sign);
//  2. the owner opens it (asset.RequestVerifier.Open: the envelope's
//     signature, then the certificate chain leaf ← governance CA ← founding
//     root, which the trust store verifies once (two Ed25519 verifies) and
//     then takes from its cache of verified chains: one verify per request);
//  3. the owner seals the receipt (asset.SealReceipt: one sign);
//  4. the requester verifies it as it stores it (asset.ReceiptStore.Put →
//     ReceiptVerifier.Verify: one verify, the chain from the cache).
//
// The retry paths (a stored request reopened, a stored receipt read back)
// verify again but are not taken by a fresh transfer. Noise's per-message
// encryption is symmetric and not counted here.
func cryptoSection(ctx context.Context, cfg *config, rep *report, rig *transferRig, at64 load) error {
	if at64.ops == 0 {
		progress("crypto: measuring the CPU time of node.Transfer at 64 in flight")
		var err error
		at64, err = runLoad(ctx, 64, cfg.transferDur/3, 64, 1500, func(ctx context.Context, seq int64) error {
			_, err := rig.nodeTransfer(ctx, seq)
			return err
		})
		if err != nil {
			return err
		}
	}
	owner, err := loadIdentity(rig.owner.repo, "bank-b")
	if err != nil {
		return err
	}
	client, err := loadIdentity(rig.requester.repo, "bank-a")
	if err != nil {
		return err
	}
	trust, err := trustStore(rig.nw.genesisFile)
	if err != nil {
		return err
	}
	vr, err := rig.nodeTransfer(ctx, 0)
	if err != nil {
		return err
	}
	newRequest := func() *asset.Request {
		return &asset.Request{
			Network: networkName, Operation: ledger.OpTransfer, Asset: rig.asset.String(),
			From: "alice@bank-a", To: "bob@bank-a", Quantity: "1", IdempotencyKey: "bank-a/c-1",
			Nonce: asset.NewNonce(), Timestamp: time.Now(), RequesterOrg: "bank-a", Peer: client.peer, Chain: client.chain,
		}
	}
	sealedReq, err := asset.SealRequest(newRequest(), client.key)
	if err != nil {
		return err
	}
	requests := &asset.RequestVerifier{Network: networkName, Trust: trust}
	receipts := &asset.ReceiptVerifier{Network: networkName, Trust: trust}
	receipt := *vr.Receipt

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := randomBytes(len(sealedReq))
	sig := ed25519.Sign(priv, msg)

	n := 2000
	if cfg.quick {
		n = 300
	}
	ops := []cryptoOp{
		{"requester seals the request (asset.SealRequest: 1 Ed25519 sign)", func() error {
			_, err := asset.SealRequest(newRequest(), client.key)
			return err
		}},
		{"owner opens it (RequestVerifier.Open: envelope verify + chain from the verified-chain cache)", func() error {
			_, err := requests.Open(sealedReq)
			return err
		}},
		{"owner seals the receipt (asset.SealReceipt: 1 sign)", func() error {
			r := receipt
			r.SignedAt = time.Now()
			_, err := asset.SealReceipt(&r, owner.key)
			return err
		}},
		{"requester verifies the receipt (ReceiptVerifier.Verify: 1 verify + chain from the cache)", func() error {
			_, err := receipts.Verify(vr.Sealed)
			return err
		}},
	}
	var total time.Duration
	for _, o := range ops {
		cpu, wall, err := measureCPU(n, o.op)
		if err != nil {
			return fmt.Errorf("%s: %w", o.what, err)
		}
		total += cpu
		rep.add(row{section: "crypto", what: o.what, value: fmtDur(cpu) + " CPU", baseline: "wall " + fmtDur(wall)})
	}
	signCPU, _, err := measureCPU(n, func() error { ed25519.Sign(priv, msg); return nil })
	if err != nil {
		return err
	}
	verifyCPU, _, err := measureCPU(n, func() error {
		if !ed25519.Verify(pub, msg, sig) {
			return fmt.Errorf("signature does not verify")
		}
		return nil
	})
	if err != nil {
		return err
	}
	perTransfer := at64.cpuPerOp()
	rep.add(row{
		section:  "crypto",
		what:     "the four together: the crypto floor of one transfer",
		value:    fmtDur(total) + " CPU",
		baseline: fmt.Sprintf("CPU per transfer at 64 in flight: %s (both nodes, process CPU / %d transfers)", fmtDur(perTransfer), at64.ops),
		ratio:    fmt.Sprintf("%.0f%% of it", 100*float64(total)/float64(perTransfer)),
	})
	raw := 2*signCPU + 2*verifyCPU
	rep.add(row{
		section:  "crypto",
		what:     fmt.Sprintf("of which raw Ed25519: 2 signs (%s each) + 2 verifies (%s each)", fmtDur(signCPU), fmtDur(verifyCPU)),
		value:    fmtDur(raw) + " CPU",
		baseline: fmt.Sprintf("CPU per transfer %s", fmtDur(perTransfer)),
		ratio:    fmt.Sprintf("%.0f%% of it", 100*float64(raw)/float64(perTransfer)),
	})
	cores := float64(runtime.NumCPU())
	rep.note("crypto: on %.0f cores the CPU time per transfer caps throughput at cores / CPU-per-transfer = %s whatever the concurrency; the crypto floor alone would cap it at %s.",
		cores, fmtRate(cores/perTransfer.Seconds()), fmtRate(cores/total.Seconds()))
	return nil
}
