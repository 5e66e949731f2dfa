%% Inspect and apply in one request (functions: prelude.erl, load.erl,
%% apply.erl, inspect.erl), for a deploy to nodes whose states the tool
%% believes it knows and snapshots meanwhile: the node takes the lock
%% and reports every module's state, as the inspect step does; only if that
%% is exactly the state believed, and no old code of a changing module is
%% in use (unless Force), does it load, as the apply step does, once it has
%% the tool's word. Otherwise it changes nothing and the tool goes on as
%% after an inspect step.
%%
%% Bindings: those of inspect_main.erl, those of apply_main.erl (Go: the
%% snapshot of the belief is written while the node prepares; with several
%% nodes, the node also says when it has prepared), and
%% Believed = [State], one per entry of Mods, as inspect reports states.
%% Value: {landed, Found, Applied} | {inspected, Found} | {locked, Info},
%%   Found as the inspect step's, Applied as apply_now's value.
case take(Lock, 3) of
    ok ->
        {States, Stuck, Copies, InTheWay} = inspect(Mods, Check, All),
        Found = {States, Stuck, Copies},
        case States =:= Believed andalso (Force orelse InTheWay =:= []) of
            true -> {landed, Found, apply_now(Load, Remove, Force, Owner, Go, Migrate)};
            false -> {inspected, Found}
        end;
    Locked -> Locked
end.
