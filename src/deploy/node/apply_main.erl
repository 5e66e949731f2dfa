%% The apply step (funs: prelude.erl, load.erl, apply.erl), with the
%% bindings Load, Remove, Force, Owner and Go, as ApplyNow takes them.
ApplyNow(Load, Remove, Force, Owner, Go).
