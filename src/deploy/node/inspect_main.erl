%% The inspect step (funs: prelude.erl, load.erl, inspect.erl): the lock,
%% then every module's state. In a deploy to several nodes whose states
%% the tool believes it knows, it also prepares the changes that belief
%% implies, if the node runs exactly what was believed; the lock's holder
%% keeps them for the apply step (load.erl's Collect). Nothing changes on
%% any node before all of them have answered.
%%
%% Bindings:
%%   Lock     = none (a read-back: no lock) | as Take takes it.
%%   Mods     = [{Module, Want, Known}], Check, All: as Inspect takes them.
%%   Believed = none | [State], one per entry of Mods, as states are reported.
%%   Stage    = none | [{Module, File, Binary}]: what to prepare.
%% Value: {locked, Info} | {ok, Found} | with Stage, {ok, Found, Staged},
%%   Found  = [Inspect's value], one per entry of Mods,
%%   Staged = staged | unbelieved | {error, [{Module, Reason}]}.
InspectEach = fun(X) -> Inspect(X, Check, All) end,
case Lock of
    none -> {ok, lists:map(InspectEach, Mods)};
    _ ->
        case Take(Lock, 3) of
            ok when Stage =:= none -> {ok, lists:map(InspectEach, Mods)};
            ok ->
                Found = lists:map(InspectEach, Mods),
                Staged = case [S || {_, S, _, _} <- Found] =:= Believed of
                    false -> unbelieved;
                    true ->
                        case Prepare(Stage) of
                            {ok, Prepared} ->
                                catch hotswap_deploy_lock ! {stage, element(1, Lock), {ok, Prepared}},
                                staged;
                            Refused -> Refused
                        end
                end,
                {ok, Found, Staged};
            Locked -> Locked
        end
end.
