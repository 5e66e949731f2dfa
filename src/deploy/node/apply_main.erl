%% The apply step (functions: prelude.erl, load.erl, apply.erl), with the
%% bindings Load, Remove, Force, Owner and Go, as apply_now takes them.
apply_now(Load, Remove, Force, Owner, Go).
