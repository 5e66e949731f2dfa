%% The apply step (funs: prelude.erl, load.erl, apply.erl), with the
%% bindings Load, Remove, Force and Owner, as ApplyNow takes them.
ApplyNow(Load, Remove, Force, Owner).
