package main

// wirecheck: feed the reference's decoders with messages captured on the broker.
//
//	goldengen wirecheck messages.json
//
// Input: {"messages": [{"op": "ae", "dir": "request" | "reply", "hex": "..."}]}, the
// payloads of `sta` actions (requests) and action results (replies) sent by ddastate
// members. Each is decoded exactly as a Go member would decode it, and then checked for
// what would make a Go member fail or panic later: configuration entries and snapshot
// configurations go through hashicorp's DecodeConfiguration (which panics on bad bytes)
// and a validity check, log types must be known (an unknown type panics on commit),
// commands must decode as an Input, a snapshot's State must be a non-nil map (a nil
// map panics on the next SET), Size must equal the data length, RPC headers must carry
// ProtocolVersion 3 and an ID and Addr, a successful reply must carry a Response, and
// an ApplyResponse.Response must be nil. Exits 1 if any message fails.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	ddaapi "github.com/coatyio/dda/services/state/api"
	ddaraft "github.com/coatyio/dda/services/state/raft"
	hraft "github.com/hashicorp/raft"
)

type wireMessage struct {
	Op  string `json:"op"`
	Dir string `json:"dir"`
	Hex string `json:"hex"`
}

func decodeConfigurationSafely(b []byte) (conf hraft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hashicorp DecodeConfiguration panics: %v", r)
		}
	}()
	conf = hraft.DecodeConfiguration(b)
	return conf, validConfiguration(conf)
}

// validConfiguration mirrors the rules of hashicorp's (unexported) checkConfiguration.
func validConfiguration(c hraft.Configuration) error {
	ids := map[hraft.ServerID]bool{}
	addrs := map[hraft.ServerAddress]bool{}
	voters := 0
	for _, s := range c.Servers {
		if s.ID == "" {
			return fmt.Errorf("empty ID in configuration: %+v", c)
		}
		if s.Address == "" {
			return fmt.Errorf("empty address in configuration: %+v", c)
		}
		if ids[s.ID] {
			return fmt.Errorf("found duplicate ID in configuration: %v", s.ID)
		}
		if addrs[s.Address] {
			return fmt.Errorf("found duplicate address in configuration: %v", s.Address)
		}
		ids[s.ID] = true
		addrs[s.Address] = true
		switch s.Suffrage {
		case hraft.Voter:
			voters++
		case hraft.Nonvoter, hraft.Staging:
		default:
			return fmt.Errorf("unknown suffrage %d for %v", s.Suffrage, s.ID)
		}
	}
	if voters == 0 {
		return fmt.Errorf("need at least one voter in configuration: %+v", c)
	}
	return nil
}

func checkHeader(h hraft.RPCHeader) error {
	if h.ProtocolVersion != hraft.ProtocolVersionMax {
		return fmt.Errorf("ProtocolVersion %d, want %d", h.ProtocolVersion, hraft.ProtocolVersionMax)
	}
	if len(h.ID) == 0 || len(h.Addr) == 0 {
		return fmt.Errorf("RPC header without ID or Addr")
	}
	return nil
}

func checkEntries(entries []*hraft.Log) error {
	for i, e := range entries {
		if e == nil {
			return fmt.Errorf("entry %d is nil", i)
		}
		switch e.Type {
		case hraft.LogCommand:
			var in ddaapi.Input
			if err := ddaraft.DecodeMsgPack(e.Data, &in); err != nil {
				return fmt.Errorf("entry %d (index %d): command does not decode as Input: %v", i, e.Index, err)
			}
		case hraft.LogConfiguration:
			if _, err := decodeConfigurationSafely(e.Data); err != nil {
				return fmt.Errorf("entry %d (index %d): %v", i, e.Index, err)
			}
		case hraft.LogNoop, hraft.LogBarrier:
		default:
			return fmt.Errorf("entry %d (index %d): log type %d makes a Go member panic on commit", i, e.Index, e.Type)
		}
	}
	return nil
}

func checkRequest(op string, b []byte) error {
	switch op {
	case "ae":
		var r hraft.AppendEntriesRequest
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		if err := checkHeader(r.RPCHeader); err != nil {
			return err
		}
		return checkEntries(r.Entries)
	case "rv":
		var r hraft.RequestVoteRequest
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		return checkHeader(r.RPCHeader)
	case "tn":
		var r hraft.TimeoutNowRequest
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		return checkHeader(r.RPCHeader)
	case "is":
		var r installSnapshotRequestWithData
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		if r.Req == nil {
			return fmt.Errorf("Req is nil")
		}
		if err := checkHeader(r.Req.RPCHeader); err != nil {
			return err
		}
		if r.Req.SnapshotVersion != hraft.SnapshotVersionMax {
			return fmt.Errorf("SnapshotVersion %d", r.Req.SnapshotVersion)
		}
		if r.Req.Size != int64(len(r.Data)) {
			return fmt.Errorf("Size %d but %d bytes of data", r.Req.Size, len(r.Data))
		}
		if _, err := decodeConfigurationSafely(r.Req.Configuration); err != nil {
			return err
		}
		var snap fsmSnapshot
		if err := ddaraft.DecodeMsgPack(r.Data, &snap); err != nil {
			return fmt.Errorf("snapshot data does not decode: %v", err)
		}
		if snap.State == nil {
			return fmt.Errorf("snapshot State is nil: a Go member would panic on its next SET")
		}
		return nil
	case "av":
		var r ddaraft.AddVoterRequest
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		if r.ServerId == "" || r.ServerAddress == "" {
			return fmt.Errorf("empty ServerId or ServerAddress")
		}
		return nil
	case "rs":
		var r ddaraft.RemoveServerRequest
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		if r.ServerId == "" {
			return fmt.Errorf("empty ServerId")
		}
		return nil
	case "ap":
		var r ddaraft.ApplyRequest
		if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
			return err
		}
		var in ddaapi.Input
		if err := ddaraft.DecodeMsgPack(r.Command, &in); err != nil {
			return fmt.Errorf("Command does not decode as Input: %v", err)
		}
		return nil
	}
	return fmt.Errorf("unknown op %q", op)
}

func checkReplyOf[T any](b []byte, check func(*T) error) error {
	var r rpcResponse[*T]
	if err := ddaraft.DecodeMsgPack(b, &r); err != nil {
		return err
	}
	if r.Error != "" {
		if r.Response != nil {
			return fmt.Errorf("error reply with a non-nil Response")
		}
		return nil
	}
	if r.Response == nil {
		return fmt.Errorf("success reply without a Response")
	}
	if check != nil {
		return check(r.Response)
	}
	return nil
}

func checkReply(op string, b []byte) error {
	switch op {
	case "ae":
		return checkReplyOf(b, func(r *hraft.AppendEntriesResponse) error { return checkHeader(r.RPCHeader) })
	case "rv":
		return checkReplyOf(b, func(r *hraft.RequestVoteResponse) error { return checkHeader(r.RPCHeader) })
	case "is":
		return checkReplyOf(b, func(r *hraft.InstallSnapshotResponse) error { return checkHeader(r.RPCHeader) })
	case "tn":
		return checkReplyOf(b, func(r *hraft.TimeoutNowResponse) error { return checkHeader(r.RPCHeader) })
	case "av":
		return checkReplyOf[ddaraft.AddVoterResponse](b, nil)
	case "rs":
		return checkReplyOf[ddaraft.RemoveServerResponse](b, nil)
	case "ap":
		// The receiving Go member decodes ApplyResponse with a nil `error` interface:
		// anything but nil in Response fails to decode there.
		return checkReplyOf(b, func(r *ddaraft.ApplyResponse) error {
			if r.Response != nil {
				return fmt.Errorf("ApplyResponse.Response is not nil")
			}
			return nil
		})
	}
	return fmt.Errorf("unknown op %q", op)
}

func wirecheck(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: goldengen wirecheck FILE.json")
		return 2
	}
	raw, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var in struct {
		Messages []wireMessage `json:"messages"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	counts := map[string]int{}
	failures := 0
	for i, m := range in.Messages {
		b, err := hex.DecodeString(m.Hex)
		if err == nil {
			if m.Dir == "request" {
				err = checkRequest(m.Op, b)
			} else if m.Dir == "reply" {
				err = checkReply(m.Op, b)
			} else {
				err = fmt.Errorf("unknown dir %q", m.Dir)
			}
		}
		counts[m.Dir+" "+m.Op]++
		if err != nil {
			failures++
			if failures <= 50 {
				short := m.Hex
				if len(short) > 400 {
					short = short[:400] + "..."
				}
				fmt.Printf("FAIL #%d %s %s: %v\n  %s\n", i, m.Dir, m.Op, err, short)
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("count %s %d\n", k, counts[k])
	}
	fmt.Printf("%d checked, %d failed\n", len(in.Messages), failures)
	if failures > 0 {
		return 1
	}
	return 0
}
