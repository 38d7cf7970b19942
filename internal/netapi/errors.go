package netapi

import (
	"errors"
	"fmt"
	"net/http"
)

// apiError is an error the API reports to the client as Neutron does:
// a status code and {"NeutronError": {"type": ..., "message": ..., "detail": ""}}.
type apiError struct {
	Status  int
	Type    string // Neutron's exception class name
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

func newError(status int, typ, format string, args ...any) *apiError {
	return &apiError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// asAPIError returns err's apiError, if it wraps one.
func asAPIError(err error) (*apiError, bool) {
	var e *apiError
	ok := errors.As(err, &e)
	return e, ok
}

// The errors of the API, with Neutron's types, statuses and messages.

func errBadRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "HTTPBadRequest", format, args...)
}

// errInvalidAttr is an attribute's failed validation, as Neutron's API layer reports it.
func errInvalidAttr(attr, reason string) *apiError {
	return errBadRequest("Invalid input for %s. Reason: %s.", attr, reason)
}

func errInvalidInput(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "InvalidInput", "Invalid input for operation: "+format+".", args...)
}

// errBadResourceRequest is Neutron's BadRequest: "Bad <resource> request: <msg>".
func errBadResourceRequest(resource, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "BadRequest", "Bad %s request: %s.", resource, fmt.Sprintf(format, args...))
}

// errPolicy is oslo.policy's refusal of a rule, e.g. "rule:update_network".
func errPolicy(action string) *apiError {
	return newError(http.StatusForbidden, "PolicyNotAuthorized", "rule:%s is disallowed by policy", action)
}

func errNotFound(typ, format string, args ...any) *apiError {
	return newError(http.StatusNotFound, typ, format, args...)
}

func errConflict(typ, format string, args ...any) *apiError {
	return newError(http.StatusConflict, typ, format, args...)
}

func errNetworkNotFound(id string) *apiError {
	return errNotFound("NetworkNotFound", "Network %s could not be found.", id)
}

func errSubnetNotFound(id string) *apiError {
	return errNotFound("SubnetNotFound", "Subnet %s could not be found.", id)
}

func errPortNotFound(id string) *apiError {
	return errNotFound("PortNotFound", "Port %s could not be found.", id)
}

func errRouterNotFound(id string) *apiError {
	return errNotFound("RouterNotFound", "Router %s could not be found", id)
}

func errFloatingIPNotFound(id string) *apiError {
	return errNotFound("FloatingIPNotFound", "Floating IP %s could not be found", id)
}

func errIPGenerationFailure(networkID string) *apiError {
	return errConflict("IpAddressGenerationFailure", "No more IP addresses available on network %s.", networkID)
}

func errIPAlreadyAllocated(ip, subnetID string) *apiError {
	return errConflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip, subnetID)
}

// errInternal is what the client sees of an unexpected failure (which is logged).
var errInternal = &apiError{Status: http.StatusInternalServerError, Type: "HTTPInternalServerError",
	Message: "Request Failed: internal server error while processing your request."}

// errUnavailable answers requests once the server is shutting down.
var errUnavailable = &apiError{Status: http.StatusServiceUnavailable, Type: "ServiceUnavailable", Message: "The service is unavailable."}
