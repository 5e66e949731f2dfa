%% The first funs of every deploy script (see src/dist/script.rs).
%% Name(Pid): its registered name, or undefined.
%% InOld(Module): [{Module, Pid, Name}] of processes still running the
%% module's old code.
Name = fun(P) ->
    case process_info(P, registered_name) of
        {registered_name, N} -> N;
        _ -> undefined
    end
end,
InOld = fun(M) -> [{M, P, Name(P)} || P <- processes(), erlang:check_process_code(P, M)] end,
%% Per-module work is done by compiled code, handed external funs such as
%% fun erlang:module_loaded/1: erl_eval interprets every step of a fun it
%% runs, some 20 us a module on this project's bench machine (a tenth of
%% a second for a release on a device's CPU). Interpreted code runs only
%% for the modules that need more than that: old code in use, a file on
%% the code path, a copy to send. The funs are small: erl_eval checks each
%% one it creates, at a cost that grows faster than its size.
%% Repeat(X, L): X as many times as L has elements.
%% Column(I, Tuples): element I of each.
%% CurrentMd5s(Modules): the MD5 of each, all loaded.
Repeat = fun(X, L) -> lists:duplicate(length(L), X) end,
Column = fun(I, Ts) -> lists:zipwith(fun erlang:element/2, Repeat(I, Ts), Ts) end,
CurrentMd5s = fun(Ms) -> lists:zipwith(fun erlang:get_module_info/2, Ms, Repeat(md5, Ms)) end,
