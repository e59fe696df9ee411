package envoysim

import (
	"errors"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/envoy"
)

// ApplyBootstrapYAML sets what envoysim reproduces of an Envoy bootstrap
// (such as envoy/envoy.yaml) on c, from its first listener: BufferLimit
// (per_connection_buffer_limit_bytes, Envoy's 1 MiB when unset),
// LocalReply (the connection manager's local_reply_config) and, from its
// ext_proc filter, ProcessingMode (response_body_mode FULL_DUPLEX_STREAMED
// with response_trailer_mode SEND included), AllowModeOverride, MessageTimeout,
// FailureModeAllow and StatusOnError. ProcessorAddr, Upstream and the
// test-only fields are left as they are. It fails on a bootstrap whose
// listener needs what envoysim does not model: no ext_proc filter, or a
// route or virtual host with its own request buffer limit.
func (c *Config) ApplyBootstrapYAML(data []byte) error {
	b, err := envoy.ParseBootstrapYAML(data)
	if err != nil {
		return fmt.Errorf("envoysim: %w", err)
	}
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) == 0 {
		return errors.New("envoysim: the bootstrap has no static listener")
	}
	l := listeners[0]
	hcm, err := connectionManager(b)
	if err != nil {
		return err
	}
	if err := noRouteBufferLimits(hcm); err != nil {
		return err
	}
	ep, err := extProcFilter(hcm)
	if err != nil {
		return err
	}
	c.BufferLimit = DefaultBufferLimit
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		c.BufferLimit = int(v.GetValue())
	}
	c.LocalReply = hcm.GetLocalReplyConfig()
	c.ProcessingMode = proto.Clone(ep.GetProcessingMode()).(*extprocfilterv3.ProcessingMode)
	c.AllowModeOverride = ep.GetAllowModeOverride()
	c.MessageTimeout = 0 // Envoy's default unless set
	if d := ep.GetMessageTimeout(); d != nil {
		c.MessageTimeout = d.AsDuration()
	}
	c.FailureModeAllow = ep.GetFailureModeAllow()
	c.StatusOnError = int(ep.GetStatusOnError().GetCode())
	return nil
}

func connectionManager(b *bootstrapv3.Bootstrap) (*hcmv3.HttpConnectionManager, error) {
	for _, fc := range b.GetStaticResources().GetListeners()[0].GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().MessageIs(&hcm) {
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					return nil, fmt.Errorf("envoysim: %w", err)
				}
				return &hcm, nil
			}
		}
	}
	return nil, errors.New("envoysim: the first listener has no HTTP connection manager")
}

func extProcFilter(hcm *hcmv3.HttpConnectionManager) (*extprocfilterv3.ExternalProcessor, error) {
	for _, f := range hcm.GetHttpFilters() {
		var ep extprocfilterv3.ExternalProcessor
		if f.GetTypedConfig().MessageIs(&ep) {
			if err := f.GetTypedConfig().UnmarshalTo(&ep); err != nil {
				return nil, fmt.Errorf("envoysim: %w", err)
			}
			return &ep, nil
		}
	}
	return nil, errors.New("envoysim: the connection manager has no ext_proc filter")
}

func noRouteBufferLimits(hcm *hcmv3.HttpConnectionManager) error {
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		if vh.GetPerRequestBufferLimitBytes() != nil {
			return fmt.Errorf("envoysim: virtual host %q sets per_request_buffer_limit_bytes, which envoysim does not model", vh.GetName())
		}
		for _, r := range vh.GetRoutes() {
			if r.GetPerRequestBufferLimitBytes() != nil || r.GetRequestBodyBufferLimit() != nil {
				return fmt.Errorf("envoysim: route %q sets its own request buffer limit, which envoysim does not model", r.GetName())
			}
		}
	}
	return nil
}
