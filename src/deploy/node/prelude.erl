%% The first functions of every deploy script (see src/peer/script.rs).
%% name_of(Pid): its registered name, or undefined.
name_of(P) ->
    case process_info(P, registered_name) of
        {registered_name, N} -> N;
        _ -> undefined
    end.
%% watch_owner(Owner): Owner's going away (the tool's node, or under --via
%% its relay process on the gateway, src/reach/relay.erl) will come as
%% {nodedown, Owner} or {'DOWN', _, process, Owner, _}.
watch_owner(O) when is_pid(O) -> monitor(process, O);
watch_owner(O) -> monitor_node(O, true).
%% in_old(Module): [{Module, Pid, Name}] of processes still running the
%% module's old code (every process looked at by a compiled call).
in_old(M) ->
    Ps = processes(),
    In = lists:zipwith(fun erlang:check_process_code/2, Ps, repeat(M, Ps)),
    [{M, P, name_of(P)} || P <- proplists:get_all_values(true, lists:zip(In, Ps))].
%% Per-module work is done by compiled code, handed external funs such as
%% fun erlang:module_loaded/1: erl_eval interprets every step of a function
%% it runs, some 20 us a module on this project's bench machine (a tenth of
%% a second for a release on a device's CPU). Interpreted code runs only
%% for the modules that need more than that: old code in use, a file on
%% the code path, a copy to send.
%% repeat(X, L): X as many times as L has elements.
repeat(X, L) -> lists:duplicate(length(L), X).
%% column(I, Tuples): element I of each.
column(I, Ts) -> lists:zipwith(fun erlang:element/2, repeat(I, Ts), Ts).
%% current_md5s(Modules): the MD5 of each, all loaded.
current_md5s(Ms) -> lists:zipwith(fun erlang:get_module_info/2, Ms, repeat(md5, Ms)).
